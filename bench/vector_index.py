#!/usr/bin/env python3
"""The cost of a semantic lookup in Redis, per vector index and partition size.

  .venv/bin/python bench/vector_index.py URL [URL ...] [--sizes 10,100,2000,20000]

For each Redis URL, the index the gateway finds there (search, vectorset or
scan: docs/cache.md) is filled with random unit vectors of the local model's
size (384) in one partition, then asked for the nearest neighbour of 200 other
vectors through the gateway's own RedisCache, one at a time. The scan index
holds at most 2,048 vectors per partition and a vector set 16,384, so larger
sizes are skipped for them.
The embedding itself (about 12 ms on this machine) is not included: this is
what the index adds. Prints a markdown table of the median and p99 lookup.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sluicegate.cache.redis_store import RedisCache
from sluicegate.cache.redis_vectors import MAX_PARTITION, MAX_SET

SIZE = 384
QUERIES = 200


def unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


async def measure(url: str, count: int, rng: np.random.Generator) -> tuple[str, list[float]]:
    cache = RedisCache(url)
    try:
        kind = (await cache.vectors()).kind
        if count > {"scan": MAX_PARTITION, "vectorset": MAX_SET}.get(kind, count):
            return kind, []
        gateway, partition = f"bench-{os.getpid()}-{count}", os.urandom(20).hex()
        vectors = unit(rng.normal(size=(count, SIZE)))
        for i, vector in enumerate(vectors):
            await cache.put(gateway, f"e{i}", b"x", 600, (partition, vector))
        seconds = []
        for query in unit(rng.normal(size=(QUERIES, SIZE))):
            started = time.perf_counter()
            found = await cache.nearest(gateway, partition, query)
            seconds.append(time.perf_counter() - started)
            assert found is not None
        # Only this run's keys: the Redis may be shared (a search index stays, empty).
        async for name in cache.client.scan_iter(match=f"sluicegate:cache:*{gateway}:*"):
            await cache.client.delete(name)
        return kind, seconds
    finally:
        await cache.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--sizes", default="10,100,2000,20000")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    print("| index | vectors in the partition | median | p99 |")
    print("| --- | --- | --- | --- |")
    for url in args.urls:
        for count in (int(s) for s in args.sizes.split(",")):
            kind, seconds = asyncio.run(measure(url, count, rng))
            if not seconds:
                cap = MAX_PARTITION if kind == "scan" else MAX_SET
                print(f"| {kind} | {count:,} | (over its cap of {cap:,} per partition) | |")
                continue
            ordered = sorted(seconds)
            p50 = statistics.median(ordered) * 1000
            p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
            print(f"| {kind} | {count:,} | {p50:.3f} ms | {p99:.3f} ms |")


if __name__ == "__main__":
    main()
