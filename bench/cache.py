#!/usr/bin/env python3
"""The latency of a cache hit (exact and semantic) against an upstream call.

  .venv/bin/python bench/cache.py [--requests 300] [--redis redis://127.0.0.1:6379/0]
                                 [--vector-redis URL ...]

One sluicegate process (one worker) serves the built-in `mock` provider, which
answers in-process at once, so the figures are the gateway's own work: a real
provider adds its hundreds of milliseconds to every miss and nothing to a hit.
Its rules differ only in their cache:

  upstream        no cache: every request goes to the provider
  exact-memory    exact mode, in-process LRU (one warm-up request, then hits)
  exact-redis     exact mode, entries in Redis (skipped when --redis is empty)
  semantic        semantic mode with the local model, asked paraphrases of the
                  warm-up question (each one an embedding and a nearest-neighbour hit)
  semantic-redis  the same with the vectors in Redis, once per Redis given
                  (--redis and each --vector-redis), labelled with the index the
                  gateway found there: search (FT.SEARCH), vectorset or scan

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
        rules.append(rule("semantic-redis", {"mode": "semantic", "backend": "redis"}))
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


def index_kind(url: str) -> str:
    """The vector index a gateway finds on this Redis (what the gateway logs at start)."""
    import asyncio

    sys.path.insert(0, REPO)
    from sluicegate.cache.redis_store import RedisCache

    async def ask() -> str:
        cache = RedisCache(url)
        try:
            return (await cache.vectors()).kind
        finally:
            await cache.close()

    return asyncio.run(ask())


class Gateway:
    """One `sluicegate serve` on a free port with ``config``, stopped on exit."""

    def __init__(self, config: dict) -> None:
        self.port = free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            yaml.safe_dump(config, handle)
        self.path = handle.name
        binary = os.path.join(REPO, ".venv", "bin", "sluicegate")
        self.process = subprocess.Popen(
            [binary, "serve", "--config", self.path, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", headers={"Authorization": f"Bearer {KEY}"}
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.get("/healthz")
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.close()
                    sys.exit("the gateway did not start")
                time.sleep(0.1)

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)
        os.unlink(self.path)


def semantic_in_redis(client: httpx.Client, n: int) -> dict:
    run(client, "semantic-redis", [QUESTION], "miss")
    deadline = time.monotonic() + 5  # the entry is stored after the answer went out
    while True:
        body = {"model": "semantic-redis", "messages": [{"role": "user", "content": QUESTION}]}
        if client.post("/v1/chat/completions", json=body).headers["x-sluicegate-cache"] == "hit":
            break
        if time.monotonic() > deadline:
            sys.exit("semantic-redis: the entry was never stored")
        time.sleep(0.05)
    asked = [PARAPHRASES[i % len(PARAPHRASES)] for i in range(n)]
    return summary(run(client, "semantic-redis", asked, "hit"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--vector-redis", action="append", default=[], metavar="URL")
    args = parser.parse_args()
    n = args.requests
    results: dict[str, dict] = {}
    gateway = Gateway(config(args.redis))
    try:
        client = gateway.client
        run(client, "upstream", [QUESTION] * 20, None)  # warm the connection
        results["upstream call (no cache)"] = summary(run(client, "upstream", [QUESTION] * n, None))
        run(client, "exact-memory", [QUESTION], "miss")
        results["exact hit, in process"] = summary(
            run(client, "exact-memory", [QUESTION] * n, "hit")
        )
        if args.redis:
            run(client, "exact-redis", [QUESTION], "miss")
            results["exact hit, Redis"] = summary(run(client, "exact-redis", [QUESTION] * n, "hit"))
        run(client, "semantic", [QUESTION], "miss")  # loads the model, stores the entry
        asked = [PARAPHRASES[i % len(PARAPHRASES)] for i in range(n)]
        results["semantic hit (paraphrase), in process"] = summary(
            run(client, "semantic", asked, "hit")
        )
        if args.redis:
            label = f"semantic hit (paraphrase), Redis {index_kind(args.redis)} index"
            results[label] = semantic_in_redis(client, n)
    finally:
        gateway.close()
    for url in args.vector_redis:
        other = Gateway(config(url))
        try:
            label = f"semantic hit (paraphrase), Redis {index_kind(url)} index"
            results[label] = semantic_in_redis(other.client, n)
        finally:
            other.close()
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
