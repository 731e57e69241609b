#!/usr/bin/env python3
"""sluicegate benchmark driver: the latency a gateway adds and the throughput it
keeps, against a static mock upstream (nginx, bench/mock-upstream/).

Standard library only.  wrk must be on PATH (closed-loop saturation runs);
fixed-rate runs use loadgen.py (open loop, next to this file).  All load goes to
the URLs given, which must be loopback addresses (anything else is refused).

  python3 bench/bench.py run --target http://127.0.0.1:18090 --name sluicegate-1w
  python3 bench/bench.py table bench/results/*.json

bench/run.sh starts the mock and sluicegate and calls `run`; use this file
directly to measure any other gateway that routes the two model names below.

For each target (the mock itself = "direct", then the gateway) one run does:
  sanity       one non-streaming and one streaming request, responses validated
  warmup       wrk, not recorded
  saturation   wrk -c CONC for DURATION, REPEAT times   (RPS at saturation, latency)
  fixed rate   loadgen at each RATE for DURATION       (p50/p90/p99, errors, achieved RPS)
  stream sat   wrk -c CONC on stream=true requests     (RPS, total latency)
  stream rate  loadgen at each STREAM_RATE             (first event and total latency)
while sampling the target's process tree (RSS, PSS, CPU) from /proc.
Added latency = gateway percentile - direct percentile at the same offered rate.

Streaming is selected by path, because nginx cannot read the body: the mock
answers SSE only on /stream/v1/chat/completions.  Direct streaming requests go
to that path; gateway streaming requests go to --stream-path with
model=--stream-model, which the gateway must route to the mock's /stream/v1.

This file holds the phases of one run and the command line. The parts that
matrix.py and limits.py reuse live beside it: load.py (the checked requests, wrk,
loadgen), procs.py (/proc readings, the sampler, the waits for a quiet machine)
and tables.py (the overhead record and the markdown tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Collection
from typing import Any

from load import check_chat, check_stream, loadgen, require_loopback, tool_versions, wrk
from procs import (
    Sampler,
    cmdline,
    listening_pids,
    loadavg,
    log,
    process_tree,
    settle,
    wait_quiet,
)
from tables import headline, overhead, render, summary

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def relative(text: str) -> str:
    """Command lines recorded in results name files relative to the repository."""
    return text.replace(REPO + os.sep, "").replace(REPO, ".")


def _ms(r: dict[str, Any], key: str = "latency_ms") -> str:
    return f"p50 {r[key]['p50']} ms, p99 {r[key]['p99']} ms"


def bench_target(
    label: str,
    base: str,
    paths: tuple[str, str],
    models: tuple[str, str],
    pids: set[int],
    a: argparse.Namespace,
    tmp: str,
    other_pids: Collection[int] = (),
) -> dict[str, Any]:
    """Every phase against one target (the mock alone or a gateway): the result's
    "direct" or "gateway" record."""
    url, surl = base.rstrip("/") + paths[0], base.rstrip("/") + paths[1]
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
    ]
    body = {"model": models[0], "messages": msgs, "max_tokens": 128, "temperature": 0}
    sbody = {"model": models[1], "messages": msgs, "max_tokens": 128, "temperature": 0}
    sbody["stream"] = True
    bf, sbf = os.path.join(tmp, f"{label}-body.json"), os.path.join(tmp, f"{label}-sbody.json")
    for path, obj in ((bf, body), (sbf, sbody)):
        with open(path, "w") as f:
            json.dump(obj, f)
    also = set(other_pids) - set(pids)  # the mock: not "other load" while measuring the gateway

    def sampler() -> Sampler:
        return Sampler(pids, also=also)  # no pids: machine-wide numbers only

    def pause() -> None:
        settle(pids, label)
        time.sleep(a.pause)
        wait_quiet(a.quiet_threshold, a.wait_quiet_phase, label)

    res: dict[str, Any] = {
        "label": label,
        "base_url": base,
        "path": paths[0],
        "stream_path": paths[1],
        "model": models[0],
        "stream_model": models[1],
        "pids": sorted(pids),
    }
    if pids:
        res["procs"] = [{"pid": p, "cmd": relative(cmdline(p))} for p in process_tree(pids)]
        _, rss, pss = Sampler(pids).snapshot()
        res["idle_rss_mb"], res["idle_pss_mb"] = round(rss / 1024, 1), round(pss / 1024, 1)

    log(f"[{label}] sanity {url}")
    res["sanity"] = {"chat": check_chat(url, body, a.api_key)}
    if not a.skip_stream:
        res["sanity"]["stream"] = check_stream(surl, sbody, a.api_key)
    log(f"[{label}] sanity ok: {res['sanity']}")

    res["machine_busy_before_pct"] = wait_quiet(a.quiet_threshold, a.wait_quiet, label)
    log(f"[{label}] warmup {a.warmup}s")
    wrk(url, bf, a.api_key, a.concurrency, a.warmup, a.wrk_threads)
    if not a.skip_stream:
        wrk(surl, sbf, a.api_key, a.concurrency, max(1, a.warmup // 2), a.wrk_threads)
    pause()

    res["saturation"] = []
    for i in range(a.repeat):
        with sampler() as s:
            r = wrk(url, bf, a.api_key, a.concurrency, a.duration, a.wrk_threads)
        r["proc"] = s.result(r["requests"])
        res["saturation"].append(r)
        log(f"[{label}] saturation #{i + 1}: {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        log(f"[{label}]   proc {r['proc']}")
        pause()

    res["fixed"] = []
    for rate in a.rates:
        with sampler() as s:
            r = loadgen(url, bf, a.api_key, rate, a.duration)
        r["proc"] = s.result(r["requests"])
        res["fixed"].append(r)
        log(f"[{label}] rate {rate}: achieved {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        log(f"[{label}]   proc {r['proc']}")
        pause()

    if not a.skip_stream:
        with sampler() as s:
            r = wrk(surl, sbf, a.api_key, a.concurrency, a.duration, a.wrk_threads)
        r["proc"] = s.result(r["requests"])
        res["stream_saturation"] = r
        log(f"[{label}] stream saturation: {r['rps']} rps, {_ms(r)}, errors {r['errors']}")
        pause()
        res["stream_fixed"] = []
        for rate in a.stream_rates:
            with sampler() as s:
                r = loadgen(surl, sbf, a.api_key, rate, a.duration)
                r["first_event_ms"] = r["ttfe_ms"]
            r["proc"] = s.result(r["requests"])
            res["stream_fixed"].append(r)
            log(
                f"[{label}] stream rate {rate}: achieved {r['rps']} rps, first event "
                f"{_ms(r, 'first_event_ms')}; total {_ms(r)}; errors {r['errors']}"
            )
            pause()
    if pids:
        _, rss, pss = Sampler(pids).snapshot()
        res["after_rss_mb"], res["after_pss_mb"] = round(rss / 1024, 1), round(pss / 1024, 1)
    return res


def port_of(url: str) -> int:
    u = urllib.parse.urlparse(url)
    return u.port or (443 if u.scheme == "https" else 80)


def resolve_pids(url: str, explicit: str) -> set[int]:
    if explicit == "none":
        return set()
    if explicit:
        return {int(p) for p in explicit.split(",")}
    return listening_pids(port_of(url))


def cmd_run(a: argparse.Namespace) -> None:
    for t in ("wrk", "timeout"):
        if not shutil.which(t):
            sys.exit(f"{t} not found on PATH (apt-get install -y wrk)")
    require_loopback(a.target)
    require_loopback(a.direct)
    a.rates = [int(x) for x in a.rates.split(",") if x]
    a.stream_rates = [int(x) for x in a.stream_rates.split(",") if x]
    started = dt.datetime.now(dt.UTC)
    params = ["target", "direct", "path", "stream_path", "direct_stream_path", "model"]
    params += ["stream_model", "duration", "warmup", "concurrency", "repeat", "rates"]
    params += ["stream_rates", "wrk_threads", "skip_stream", "skip_direct"]
    out: dict[str, Any] = {
        "name": a.name,
        "version": a.version,
        "notes": a.notes,
        "started_utc": started.isoformat(timespec="seconds"),
        "host": {
            "machine": platform.machine(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": loadavg(),
        },
        "tools": tool_versions(),
        "params": {k: getattr(a, k) for k in params},
    }
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        direct_pids = resolve_pids(a.direct, a.direct_pid)
        if not a.skip_direct:
            out["direct"] = bench_target(
                "direct",
                a.direct,
                (a.path, a.direct_stream_path),
                (a.model, a.model),
                direct_pids,
                a,
                tmp,
            )
        gp = resolve_pids(a.target, a.pid)
        if not gp:
            log(f"WARNING: nothing found listening on port {port_of(a.target)}; no RSS/CPU figures")
        out["gateway"] = bench_target(
            a.name,
            a.target,
            (a.path, a.stream_path),
            (a.model, a.stream_model),
            gp,
            a,
            tmp,
            other_pids=direct_pids,
        )
    out["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if "direct" in out:
        out["overhead"] = overhead(out["direct"], out["gateway"])
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"{a.name}-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {relative(path)}")
    print(summary(out) + "\n" + render([out]))


def cmd_table(a: argparse.Namespace) -> None:
    files: list[str] = []
    for pat in a.files:
        files += sorted(glob.glob(pat)) or [pat]
    results = []
    for name in files:
        with open(name) as f:
            results.append(json.load(f))
    if a.headline:
        print(headline(results))
        return
    print("### Headline\n\n" + headline(results))
    if a.summary:
        for r in results:
            print(summary(r))
    print(render(results))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="benchmark direct (mock) and a gateway")
    add = r.add_argument
    add("--target", required=True, help="gateway base URL, e.g. http://127.0.0.1:18090")
    add("--name", default="gateway", help="label used in results and file names")
    add("--version", default="", help="gateway version string to record")
    add("--notes", default="", help="free text recorded in the result (server, flags)")
    add(
        "--pid",
        default="",
        help="gateway pid(s), comma separated; default: whoever listens on the target port "
        "(+ descendants); 'none' to skip RSS/CPU",
    )
    add("--direct", default="http://127.0.0.1:18080", help="mock upstream base URL")
    add("--direct-pid", default="", help="like --pid for the mock upstream")
    add("--skip-direct", action="store_true", help="do not measure the direct baseline")
    add("--path", default="/v1/chat/completions")
    add("--stream-path", default="/v1/chat/completions", help="gateway path for stream requests")
    add("--direct-stream-path", default="/stream/v1/chat/completions")
    add("--model", default="gpt-4o-mini")
    add("--stream-model", default="gpt-4o-mini-stream", help="routed to the mock's /stream/v1")
    add("--api-key", default=os.environ.get("BENCH_API_KEY", "sk-bench-1234"))
    add("--duration", type=int, default=10, help="seconds per measured phase")
    add("--warmup", type=int, default=3)
    add("--concurrency", type=int, default=50, help="wrk connections for saturation runs")
    add("--repeat", type=int, default=2, help="saturation runs per target (noise estimate)")
    add("--rates", default="50,200,500", help="fixed rates (RPS), comma separated")
    add("--stream-rates", default="20", help="fixed rates (RPS) for streaming runs")
    add("--wrk-threads", type=int, default=1)
    add("--pause", type=float, default=2.0, help="idle seconds between phases")
    add("--skip-stream", action="store_true")
    add(
        "--quiet-threshold",
        type=float,
        default=0.10,
        help="before each phase, wait until the machine is below this busy fraction",
    )
    add("--wait-quiet", type=float, default=180, help="max seconds to wait for quiet per target")
    add("--wait-quiet-phase", type=float, default=60, help="max seconds to wait per phase")
    add("--out-dir", default=os.path.join(HERE, "results"))
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("table", help="markdown tables from result JSON files")
    t.add_argument("files", nargs="+")
    t.add_argument("--headline", action="store_true", help="only the one-row-per-run table")
    t.add_argument("--summary", action="store_true", help="also each run's side-by-side table")
    t.set_defaults(func=cmd_table)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
