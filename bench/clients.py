#!/usr/bin/env python3
"""What the upstream HTTP client costs: aiohttp vs httpx against the nginx mock.

Each client sends N requests with C concurrent tasks through one pooled client
object (aiohttp.ClientSession / httpx.AsyncClient) on uvloop, in a fresh
process per measurement, and reports requests per second and CPU seconds per
1000 requests (the client process's user + system time).  The order of the
clients alternates between repeats, so drift on a shared machine hits both.

  .venv/bin/python bench/clients.py                  # both clients, chat and stream, 3 repeats
  .venv/bin/python bench/clients.py -n 50000 --repeat 5 --kinds chat
  .venv/bin/python bench/clients.py --clients aiohttp,httpx,httpx2 -c 8

The mock upstream (bench/mock-upstream/) is started if nothing answers on
127.0.0.1:18080 and stopped again at the end.  Needs aiohttp, httpx and uvloop
(`make dev` installs them); httpx2 is the pydantic fork of httpx, which the
openai and anthropic SDKs now pull in.  Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
    ],
    "max_tokens": 128,
    "temperature": 0,
}
CLIENTS = ("aiohttp", "httpx", "httpx2")
PATHS = {"chat": "/v1/chat/completions", "stream": "/stream/v1/chat/completions"}
MAX_SECONDS = 60.0  # a slow client stops early: fewer requests, same per-request figures
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-upstream-key"}


# --------------------------------------------------------------------------- child process
async def drive(send, n: int, conc: int, seconds: float) -> tuple[int, int]:
    """Send up to n requests from conc tasks, starting none after `seconds`;
    returns (requests done, requests failed)."""
    left = n
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal left, errors
        while left > 0 and time.perf_counter() < deadline:
            left -= 1
            try:
                ok = await send()
            except Exception:
                ok = False
            errors += not ok

    await asyncio.gather(*(worker() for _ in range(conc)))
    return n - left, errors


async def run_aiohttp(url: str, body: bytes, stream: bool, n: int, conc: int, warm: int) -> dict:
    import aiohttp

    # Configured like sluicegate's HttpTransport (sluicegate/proxy/upstream.py).
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=60),
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )

    async def send() -> bool:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            if stream:
                async for _ in resp.content.iter_any():
                    pass
            else:
                await resp.read()
            return resp.status == 200

    try:
        return await measure(send, n, conc, warm, aiohttp.__version__)
    finally:
        await session.close()


async def run_httpx(
    url: str, body: bytes, stream: bool, n: int, conc: int, warm: int, module: str = "httpx"
) -> dict:
    httpx = importlib.import_module(module)  # httpx, or its fork httpx2 (same API)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=60)
    client = httpx.AsyncClient(limits=limits, timeout=30)

    async def send() -> bool:
        if stream:
            async with client.stream("POST", url, content=body, headers=HEADERS) as resp:
                async for _ in resp.aiter_raw():
                    pass
                return resp.status_code == 200
        resp = await client.post(url, content=body, headers=HEADERS)
        return resp.status_code == 200

    try:
        return await measure(send, n, conc, warm, httpx.__version__)
    finally:
        await client.aclose()


async def measure(send, n: int, conc: int, warm: int, version: str) -> dict:
    await drive(send, warm, conc, MAX_SECONDS)  # open the pool, warm caches; not counted
    t0, c0 = time.perf_counter(), os.times()
    n, errors = await drive(send, n, conc, MAX_SECONDS)
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "version": version,
        "requests": n,
        "errors": errors,
        "wall_s": round(t1 - t0, 3),
        "cpu_s": round(cpu, 3),
        "rps": round(n / (t1 - t0), 1),
        "cpu_s_per_1000": round(1000 * cpu / n, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def child(a: argparse.Namespace) -> None:
    import uvloop

    global MAX_SECONDS
    MAX_SECONDS = a.max_seconds
    url = a.url.rstrip("/") + PATHS[a.kind]
    body = json.dumps(dict(BODY, stream=a.kind == "stream")).encode()
    run = {
        "aiohttp": run_aiohttp,
        "httpx": run_httpx,
        "httpx2": functools.partial(run_httpx, module="httpx2"),
    }[a.client]
    result = uvloop.run(run(url, body, a.kind == "stream", a.n, a.concurrency, a.warmup))
    print(json.dumps({"client": a.client, "kind": a.kind, **result}))


# --------------------------------------------------------------------------- parent
def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def parent(a: argparse.Namespace) -> None:
    host = urllib.parse.urlparse(a.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing to send load to {host}: loopback only")
    started = False
    if not healthy(a.url):
        subprocess.run([os.path.join(HERE, "mock-upstream", "start.sh")], check=True, timeout=30)
        started = True
    results = []
    try:
        clients = a.clients.split(",")
        for rep in range(a.repeat):
            for kind in a.kinds.split(","):
                for client in clients if rep % 2 == 0 else clients[::-1]:
                    cmd = [sys.executable, __file__, "--child", client, "--kind", kind]
                    cmd += ["--url", a.url, "-n", str(a.n), "-c", str(a.concurrency)]
                    cmd += ["--warmup", str(a.warmup), "--max-seconds", str(a.max_seconds)]
                    out = subprocess.run(
                        cmd, capture_output=True, text=True, timeout=a.timeout, check=True
                    )
                    r = json.loads(out.stdout)
                    results.append(r)
                    print(
                        f"[{rep + 1}/{a.repeat}] {client:8} {kind:6} {r['rps']:9.0f} req/s  "
                        f"{r['cpu_s_per_1000']:.3f} CPU s/1000  errors {r['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if started:
            subprocess.run([os.path.join(HERE, "mock-upstream", "stop.sh")], timeout=30)
    print(table(results, a))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"params": vars(a), "results": results}, f, indent=1)


def table(results: list[dict], a: argparse.Namespace) -> str:
    lines = [
        f"n={a.n} requests per measurement (at most {a.max_seconds:g} s), "
        f"concurrency {a.concurrency}, uvloop, "
        f"{a.repeat} repeats (fresh process each)\n",
        "| client | kind | req/s per run | req/s median | CPU s / 1000 req (median) "
        "| peak RSS MB | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in a.kinds.split(","):
        for client in a.clients.split(","):
            rs = [r for r in results if r["client"] == client and r["kind"] == kind]
            if not rs:
                continue
            runs = " / ".join(f"{r['rps']:.0f}" for r in rs)
            rps = statistics.median(r["rps"] for r in rs)
            cpu = statistics.median(r["cpu_s_per_1000"] for r in rs)
            rss = max(r["peak_rss_mb"] for r in rs)
            errors = sum(r["errors"] for r in rs)
            name = f"{client} {rs[0]['version']}"
            lines.append(f"| {name} | {kind} | {runs} | {rps:.0f} | {cpu:.3f} | {rss} | {errors} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", default="http://127.0.0.1:18080", help="mock upstream base URL")
    ap.add_argument("-n", type=int, default=20000, help="requests per measurement")
    ap.add_argument("-c", "--concurrency", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=1000, help="requests before measuring")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default="chat,stream", help="chat (JSON answer), stream (SSE)")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=60,
        help="stop a measurement after this long even if fewer than N requests were sent",
    )
    ap.add_argument("--timeout", type=float, default=180, help="hard limit per measurement (s)")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--clients", default="aiohttp,httpx", help="any of aiohttp,httpx,httpx2")
    ap.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="chat", choices=tuple(PATHS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not set(a.clients.split(",")) <= set(CLIENTS):
        ap.error(f"--clients: choose from {','.join(CLIENTS)}")
    if a.child:
        a.client = a.child
        child(a)
    else:
        parent(a)


if __name__ == "__main__":
    main()
