#!/usr/bin/env python3
"""Soak: a gateway under a fixed request rate for minutes (ten by default), watched.

    python bench/soak.py [--minutes 10] [--rate 40] [--out bench/results/soak]

The gateway runs in its own process (``--serve``, started by this script) in front of an
OpenAI-compatible upstream served here; half the requests stream. Every second the gateway
process samples its resident memory, open file descriptors and asyncio tasks. At the end
the script waits for the gateway to go idle and checks:

  * no request failed (every answer a 200, every stream ending with ``[DONE]``);
  * memory is flat: the resident size's growth over the second half of the run, by a
    least-squares fit, is under ``--max-growth-mb``;
  * descriptors and tasks come back to what they were before the first request, within
    ``--idle`` seconds without load (idle pooled upstream connections expire after 60 s).

It writes ``samples.csv``, ``rss.svg`` (the resident size over time) and ``summary.json``
to ``--out`` and exits 1 when a check fails. Not part of ``make test``: ``make soak``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

KEY = "sk-soak-0123456789"
WARMUP = 10.0  # seconds before the baseline sample


# -- the gateway process ----------------------------------------------------------------


def serve(config: str, stats: str) -> None:
    """Run the gateway like ``sluicegate serve``, plus a sampler thread."""
    import uvicorn

    from sluicegate.app import create_app
    from sluicegate.config.load import load_config
    from sluicegate.http_protocol import HeadTimeoutProtocol
    from sluicegate.runtime import Runtime

    runtime = Runtime(load_config(Path(config)), config_path=Path(config))
    app = create_app(runtime)
    loops: list[asyncio.AbstractEventLoop] = []

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if not loops:
            loops.append(asyncio.get_running_loop())
        await app(scope, receive, send)

    def sample() -> None:
        with open(stats, "a") as out:
            while True:
                time.sleep(1)
                if not loops:
                    continue
                tasks = asyncio.run_coroutine_threadsafe(_count_tasks(), loops[0]).result(5)
                row = {
                    "t": time.time(),
                    "rss_kb": _rss_kb(os.getpid()),
                    "fds": len(os.listdir("/proc/self/fd")),
                    "tasks": tasks,
                }
                out.write(json.dumps(row) + "\n")
                out.flush()

    threading.Thread(target=sample, daemon=True).start()
    # As `sluicegate serve` does: a graceful stop on SIGTERM is an exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    host, _, port = runtime.loaded.config.gateway.listen.rpartition(":")
    uvicorn.run(
        wrapped,
        host=host,
        port=int(port),
        loop="uvloop",
        http=HeadTimeoutProtocol,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


async def _count_tasks() -> int:
    return len(asyncio.all_tasks())


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- the upstream and the load (this process) ------------------------------------------


async def upstream(port: int) -> Any:
    from aiohttp import web

    words = ["the", "soak", "goes", "on", "at", "a", "steady", "pace"]

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            message = {"role": "assistant", "content": " ".join(words)}
            return web.json_response(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, word in enumerate(words):
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": word if i == 0 else " " + word},
                        "finish_reason": None,
                    }
                ],
            }
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await asyncio.sleep(0.005)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def load(url: str, rate: float, seconds: float) -> dict[str, Any]:
    import aiohttp

    counts = {"sent": 0, "ok": 0, "failed": 0}
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {KEY}"}

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        stream = i % 2 == 0
        body = {
            "model": "soak",
            "stream": stream,
            "messages": [{"role": "user", "content": f"request {i}"}],
        }
        try:
            async with session.post(url, json=body, headers=headers) as answer:
                text = await answer.text()
                whole = text.rstrip().endswith("data: [DONE]") if stream else '"choices"' in text
                if answer.status == 200 and whole:
                    counts["ok"] += 1
                    return
                failures.append(f"{answer.status}: {text[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            failures.append(repr(exc))
        counts["failed"] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        i = 0
        while (due := started + i / rate) < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(session, i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            counts["sent"] += 1
            i += 1
        await asyncio.gather(*pending)
    return {**counts, "first_failures": failures[:5]}


# -- the report --------------------------------------------------------------------------


def growth_mb(rows: list[dict[str, Any]]) -> float:
    """Least-squares growth of the resident size from the first row to the last, in MB."""
    if len(rows) < 2:
        return 0.0
    xs = [r["t"] for r in rows]
    ys = [r["rss_kb"] / 1024 for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return (
        0.0
        if var == 0
        else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / var * (xs[-1] - xs[0])
    )


def svg(rows: list[dict[str, Any]], path: Path) -> None:
    width, height, pad = 720, 300, 40
    t0 = rows[0]["t"]
    xs = [r["t"] - t0 for r in rows]
    ys = [r["rss_kb"] / 1024 for r in rows]
    top = max(ys) * 1.1
    x_max = max(xs) or 1

    def point(x: float, y: float) -> str:
        left = pad + x / x_max * (width - 2 * pad)
        return f"{left:.1f},{height - pad - y / top * (height - 2 * pad):.1f}"

    line = " ".join(point(x, y) for x, y in zip(xs, ys, strict=False))
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="black"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>'
        f'<text x="{pad}" y="{pad - 10}" font-size="12">gateway RSS (MB), max {max(ys):.1f}, '
        f"over {x_max:.0f} s</text>"
        f'<text x="{pad - 30}" y="{pad + 4}" font-size="10">{top:.0f}</text>'
        f'<text x="{pad - 10}" y="{height - pad + 4}" font-size="10">0</text>'
        f'<text x="{width - pad - 30}" y="{height - pad + 15}" font-size="10">{x_max:.0f} s</text>'
        "</svg>\n"
    )


def read_samples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=40, help="requests per second")
    parser.add_argument("--out", default="bench/results/soak")
    parser.add_argument("--max-growth-mb", type=float, default=5)
    # Idle pooled connections to the upstream are kept 60 s and reaped on a 60 s timer: the
    # end is measured once they could all have expired, so only a leak remains.
    parser.add_argument("--idle", type=float, default=150, help="longest wait to settle")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.stats)
        return 0

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fakes.gateway import free_port  # a free loopback port; nothing else

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    up_port, gw_port = free_port(), free_port()
    config = {
        "gateway": {"listen": f"127.0.0.1:{gw_port}"},
        "audit": {"path": str(work / "audit.db"), "spill_path": str(work / "spill.jsonl")},
        "services": [
            {
                "name": "up",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": up_port,
                "retries": 0,
            }
        ],
        "rules": [{"name": "r", "targets": [{"service": "up"}]}],
        "consumers": [{"name": "soak", "keys": [KEY]}],
    }
    (work / "gateway.yaml").write_text(yaml.safe_dump(config))
    stats = work / "stats.jsonl"

    async def run() -> dict[str, Any]:
        runner = await upstream(up_port)
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(work / "gateway.yaml"),
                "--stats",
                str(stats),
            ],
            cwd=work,
        )
        try:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                for _ in range(300):
                    try:
                        async with session.get(f"http://127.0.0.1:{gw_port}/readyz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            baseline = read_samples(stats)[-1]  # started, nothing pooled yet
            url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            await load(url, args.rate, WARMUP)  # caches and allocator warm before the watch
            started = time.time()
            result = await load(url, args.rate, args.minutes * 60)
            stopped = time.monotonic()
            while True:  # until pooled connections expired and tasks ended, or --idle passed
                end = read_samples(stats)[-1]
                settled = end["fds"] <= baseline["fds"] and end["tasks"] <= baseline["tasks"]
                if settled or time.monotonic() - stopped > args.idle:
                    break
                await asyncio.sleep(1)
            result["settled_after_s"] = round(time.monotonic() - stopped, 1)
            proc.send_signal(signal.SIGTERM)
            result["exit_code"] = proc.wait(30)
            return {**result, "baseline": baseline, "end": end, "started": started}
        finally:
            if proc.poll() is None:
                proc.kill()
            await runner.cleanup()

    result = asyncio.run(run())
    rows = read_samples(stats)
    during = [r for r in rows if r["t"] >= result["started"]]
    second_half = during[len(during) // 2 :]
    growth = growth_mb(second_half)
    base, end = result["baseline"], result["end"]
    checks = {
        "no_errors": result["failed"] == 0 and result["ok"] == result["sent"],
        "flat_memory": growth < args.max_growth_mb,
        "fds_back_to_baseline": end["fds"] <= base["fds"],
        "tasks_back_to_baseline": end["tasks"] <= base["tasks"],
        "exit_0": result["exit_code"] == 0,
    }
    summary = {
        "minutes": args.minutes,
        "rate": args.rate,
        "sent": result["sent"],
        "ok": result["ok"],
        "failed": result["failed"],
        "first_failures": result["first_failures"],
        "rss_mb": {
            "baseline": round(base["rss_kb"] / 1024, 1),
            "max": round(max(r["rss_kb"] for r in during) / 1024, 1),
            "end": round(end["rss_kb"] / 1024, 1),
            "growth_over_second_half": round(growth, 2),
        },
        "settled_after_s": result["settled_after_s"],
        "fds": {"baseline": base["fds"], "max": max(r["fds"] for r in during), "end": end["fds"]},
        "tasks": {
            "baseline": base["tasks"],
            "max": max(r["tasks"] for r in during),
            "end": end["tasks"],
        },
        "checks": checks,
    }
    with open(out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["t", "rss_kb", "fds", "tasks"])
        writer.writeheader()
        writer.writerows({**r, "t": round(r["t"] - rows[0]["t"], 1)} for r in rows)
    svg(during, out / "rss.svg")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
