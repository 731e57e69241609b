#!/usr/bin/env python3
"""Time to first token with output guardrails on and off.

  .venv/bin/python bench/guardrails.py [--requests 200] [--rounds 2] [--words 60]

Two sluicegate processes (one worker each) serve the built-in `mock` provider,
streaming its answer word by word (`mock_token_delay`), so no upstream is needed
and the only difference between the two is the rule's output guardrails:

  off   no policies
  on    pii_answers: redact (every built-in entity type) and a deny list on answers,
        so every streamed word goes through the streaming scanner

Each request is a streamed chat completion read with a plain HTTP client; the time
to first token is the time to the first event carrying text, measured at the client,
and the whole stream's time is kept too. Requests run one after another, the two
gateways alternating round by round so that drift on the machine weighs on both
alike. Writes bench/results/guardrails-<UTC time>.json and prints a markdown table.
Both gateways are stopped by process id at the end.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from gateways import serve
from procs import log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KEY = "sk-bench-guardrails-1234"


def config(guarded, delay):
    policies = (
        "    policies:\n"
        "      guardrails:\n"
        "        pii_answers: redact\n"
        "        deny: [{name: codenames, words: [bluebird, nightjar], applies_to: response}]\n"
        if guarded
        else ""
    )
    return (
        "gateway: {name: bench-guardrails}\n"
        "audit: {enabled: false}\n"
        "services:\n"
        f"  - {{name: mock, provider: mock, mock_token_delay: {delay}}}\n"
        "rules:\n"
        "  - name: chat\n"
        "    match: {models: [gpt-4o-mini]}\n"
        "    targets: [{service: mock}]\n"
        f"{policies}"
        "consumers:\n"
        f"  - {{name: bench, keys: [{KEY}]}}\n"
    )


def one(port, body):
    """(seconds to the first text event, seconds to the end) of one streamed request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request(
        "POST",
        "/v1/chat/completions",
        body,
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        sys.exit(f"status {response.status}: {response.read()[:500]!r}")
    first = None
    while True:
        line = response.readline()
        if not line:
            break
        if (
            first is None
            and line.startswith(b"data: {")
            and b'"content":"' in line
            and b'"content":""' not in line
        ):
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    conn.close()
    return first if first is not None else total, total


def run(port, body, count):
    ttft, totals = [], []
    for _ in range(count):
        a, b = one(port, body)
        ttft.append(a)
        totals.append(b)
    return ttft, totals


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="streamed requests per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--words", type=int, default=60, help="words in each answer")
    ap.add_argument("--delay", default="2ms", help="the mock's pause between words")
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"))
    args = ap.parse_args()
    words = " ".join(f"w{i} mail me" for i in range(args.words // 3))
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": words}],
        }
    )
    workdir = tempfile.mkdtemp(prefix="sluicegate-bench-guardrails-")
    procs = {}
    results = {"off": {"ttft": [], "total": []}, "on": {"ttft": [], "total": []}}
    try:
        for name in ("off", "on"):
            proc, url = serve(name, config(name == "on", args.delay), workdir, args.python)
            procs[name] = (proc, int(url.rsplit(":", 1)[1]))
        for _, port in procs.values():
            run(port, body, 10)  # warm up
        for round_ in range(args.rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for name in order:
                ttft, totals = run(procs[name][1], body, args.requests)
                results[name]["ttft"] += ttft
                results[name]["total"] += totals
                log(f"round {round_ + 1} {name}: p50 ttft {statistics.median(ttft) * 1000:.2f} ms")
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = {
        name: {
            "requests": len(r["ttft"]),
            "ttft_p50_ms": round(statistics.median(r["ttft"]) * 1000, 3),
            "ttft_p99_ms": round(pct(r["ttft"], 99) * 1000, 3),
            "stream_p50_ms": round(statistics.median(r["total"]) * 1000, 3),
            "stream_p99_ms": round(pct(r["total"], 99) * 1000, 3),
        }
        for name, r in results.items()
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = os.path.join(HERE, "results", f"guardrails-{stamp}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(
            {
                "when": stamp,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                # Not the interpreter's path: results name no machine paths.
                "settings": {k: v for k, v in vars(args).items() if k != "python"},
                "results": summary,
            },
            f,
            indent=2,
        )
    print("| guardrails | requests | TTFT p50 ms | TTFT p99 ms | stream p50 ms | stream p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        print(
            f"| {name} | {s['requests']} | {s['ttft_p50_ms']} | {s['ttft_p99_ms']} "
            f"| {s['stream_p50_ms']} | {s['stream_p99_ms']} |"
        )
    print(f"\nwritten: {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
