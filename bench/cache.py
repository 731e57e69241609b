#!/usr/bin/env python3
"""The latency of a cache hit (exact and semantic) against an upstream call.

  .venv/bin/python bench/cache.py [--requests 300] [--redis redis://127.0.0.1:6379/0]

One sluicegate process (one worker) serves the built-in `mock` provider, which
answers in-process at once, so the figures are the gateway's own work: a real
provider adds its hundreds of milliseconds to every miss and nothing to a hit.
Its rules differ only in their cache:

  upstream        no cache: every request goes to the provider
  exact-memory    exact mode, in-process LRU (one warm-up request, then hits)
  exact-redis     exact mode, entries in Redis (skipped when --redis is empty)
  semantic        semantic mode with the local model, asked paraphrases of the
                  warm-up question (each one an embedding and a nearest-neighbour hit)

Requests are sent one at a time over a kept-alive connection; the script
checks every reply's x-sluicegate-cache header (a would-be hit that missed
fails the run). Writes bench/results/cache-<UTC time>.json and prints a markdown
table. The gateway is stopped by its process id at the end.
"""

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KEY = "sk-bench-cache-0001"
QUESTION = "What is the capital of France?"
PARAPHRASES = [
    "Tell me France's capital city",
    "Which city is the capital of France?",
    "Capital of France?",
    "What city is France's capital?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(redis_url: str) -> dict:
    def rule(name: str, cache: dict | None) -> dict:
        out: dict = {"name": name, "match": {"models": [name]}, "targets": [{"service": "mock"}]}
        if cache is not None:
            out["policies"] = {"cache": cache}
        return out

    rules = [
        rule("upstream", None),
        rule("exact-memory", {"mode": "exact", "backend": "memory"}),
        rule("semantic", {"mode": "semantic", "backend": "memory"}),
    ]
    if redis_url:
        rules.append(rule("exact-redis", {"mode": "exact", "backend": "redis"}))
    return {
        "gateway": {"name": f"bench-cache-{os.getpid()}", "redis": redis_url or None},
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": rules,
        "consumers": [{"name": "bench", "keys": [KEY]}],
        "audit": {"enabled": False},
    }


def run(client: httpx.Client, model: str, texts: list[str], expect: str | None) -> list[float]:
    seconds = []
    for text in texts:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        started = time.perf_counter()
        response = client.post("/v1/chat/completions", json=body)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
        got = response.headers.get("x-sluicegate-cache")
        if got != expect:
            sys.exit(f"{model}: expected x-sluicegate-cache {expect}, got {got} for {text!r}")
    return seconds


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config(args.redis), handle)
    binary = os.path.join(REPO, ".venv", "bin", "sluicegate")
    gateway = subprocess.Popen(
        [binary, "serve", "--config", handle.name, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, dict] = {}
    try:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        sys.exit("the gateway did not start")
                    time.sleep(0.1)
            n = args.requests
            run(client, "upstream", [QUESTION] * 20, None)  # warm the connection
            results["upstream call (no cache)"] = summary(
                run(client, "upstream", [QUESTION] * n, None)
            )
            run(client, "exact-memory", [QUESTION], "miss")
            results["exact hit, in process"] = summary(
                run(client, "exact-memory", [QUESTION] * n, "hit")
            )
            if args.redis:
                run(client, "exact-redis", [QUESTION], "miss")
                results["exact hit, Redis"] = summary(
                    run(client, "exact-redis", [QUESTION] * n, "hit")
                )
            run(client, "semantic", [QUESTION], "miss")  # loads the model, stores the entry
            asked = [PARAPHRASES[i % len(PARAPHRASES)] for i in range(n)]
            results["semantic hit (paraphrase), in process"] = summary(
                run(client, "semantic", asked, "hit")
            )
    finally:
        gateway.terminate()
        gateway.wait(10)
        os.unlink(handle.name)
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"cache-{now}.json")
    machine = {"python": platform.python_version(), "cpus": os.cpu_count()}
    with open(out, "w") as f:
        json.dump({"machine": machine, "results": results}, f, indent=2)
    print("| request | median | p99 | mean |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['mean_ms']} ms |")
    print(f"\n{out}")


if __name__ == "__main__":
    main()
