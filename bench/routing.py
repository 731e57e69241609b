#!/usr/bin/env python3
"""Smart routing's cost on the request path: `cheapest` and `fastest` against `weighted`.

  .venv/bin/python bench/routing.py [--requests 2000] [--words 40]

One sluicegate process (one worker) serves three rules over the same three targets of
the built-in `mock` provider (no upstream needed): `weighted` (today's pick), `cheapest`
(the catalog's price for the request's estimated tokens, after the able-target checks)
and `fastest` (the decaying latency average, with exploration). Requests are whole chat
completions sent one after another, the three rules taken in turn request by request
(the first of each turn rotating), so that drift on the machine weighs on all alike. The
latency is measured at the client. Writes bench/results/routing-<UTC time>.json and
prints a markdown table with each strategy's median against weighted's. The gateway is
stopped by process id at the end.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

from gateways import serve
from procs import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KEY = "sk-bench-routing-1234"
STRATEGIES = ("weighted", "cheapest", "fastest")
TARGETS = (
    "[{service: mock-a, model: gpt-4o-mini}, {service: mock-b, model: gemini-2.0-flash},"
    " {service: mock-c, model: claude-haiku-4-5}]"
)


def config():
    rules = "".join(
        f"  - name: {name}\n"
        f"    match: {{models: [{name}]}}\n"
        f"    strategy: {name}\n"
        f"    targets: {TARGETS}\n"
        for name in STRATEGIES
    )
    return (
        "gateway: {name: bench-routing}\n"
        "audit: {enabled: false}\n"
        "services:\n"
        "  - {name: mock-a, provider: mock}\n"
        "  - {name: mock-b, provider: mock}\n"
        "  - {name: mock-c, provider: mock}\n"
        "rules:\n"
        f"{rules}"
        "consumers:\n"
        f"  - {{name: bench, keys: [{KEY}]}}\n"
    )


def one(conn, body):
    started = time.perf_counter()
    conn.request(
        "POST",
        "/v1/chat/completions",
        body,
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"status {response.status}: {data[:500]!r}")
    return time.perf_counter() - started


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="requests per strategy")
    ap.add_argument("--words", type=int, default=40, help="words in each prompt")
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"))
    args = ap.parse_args()
    prompt = " ".join(f"word{i}" for i in range(args.words))
    bodies = {
        name: json.dumps({"model": name, "messages": [{"role": "user", "content": prompt}]})
        for name in STRATEGIES
    }
    workdir = tempfile.mkdtemp(prefix="sluicegate-bench-routing-")
    times = {name: [] for name in STRATEGIES}
    proc, url = serve("routing", config(), workdir, args.python)
    try:
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for name in STRATEGIES:  # warm up
            for _ in range(50):
                one(conn, bodies[name])
        for i in range(args.requests):
            turn = STRATEGIES[i % 3 :] + STRATEGIES[: i % 3]
            for name in turn:
                times[name].append(one(conn, bodies[name]))
            if (i + 1) % 500 == 0:
                log(f"{i + 1} of {args.requests} turns")
        conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    base = statistics.median(times["weighted"])
    summary = {
        name: {
            "requests": len(t),
            "p50_ms": round(statistics.median(t) * 1000, 3),
            "p99_ms": round(pct(t, 99) * 1000, 3),
            "p50_vs_weighted": round(statistics.median(t) / base, 4),
        }
        for name, t in times.items()
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = os.path.join(HERE, "results", f"routing-{stamp}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(
            {
                "when": stamp,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "settings": {k: v for k, v in vars(args).items() if k != "python"},
                "results": summary,
            },
            f,
            indent=2,
        )
    print("| strategy | requests | p50 ms | p99 ms | p50 vs weighted |")
    print("| --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        print(
            f"| {name} | {s['requests']} | {s['p50_ms']} | {s['p99_ms']} "
            f"| {s['p50_vs_weighted']:.3f} |"
        )
    print(f"\nwritten: {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
