"""The semantic cache's vector indexes in Redis (docs/cache.md), each against a real
server: the query engine's FT.SEARCH (Redis 8 with RediSearch loaded), Redis 8's vector
sets, and the scan that works on any Redis (the machine's own). Whichever index holds
them, the same vectors give the same nearest entry and the same similarity."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from sluicegate.cache import redis_vectors
from sluicegate.cache.policy import DEFAULT_THRESHOLD
from sluicegate.cache.redis_store import RedisCache
from tests.conftest import KEY, openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.redis_servers import redis_servers
from tests.integration.test_cache_semantic import ask, local_model, unique

Start = Callable[[dict[str, Any]], RunningGateway]
MACHINE_REDIS = "redis://127.0.0.1:6379/0"
SIZE = 384


@pytest.fixture(params=["search", "vectorset", "scan"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the index the server should get, its URL)."""
    kind: str = request.param
    if kind == "scan":
        yield kind, MACHINE_REDIS
        return
    with redis_servers(tmp_path) as servers:
        port = servers.redis8(search=kind == "search")
        yield kind, f"redis://127.0.0.1:{port}/0"


def unit(rows: Any) -> Any:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


async def _kind(url: str) -> str:
    cache = RedisCache(url)
    try:
        return (await cache.vectors()).kind
    finally:
        await cache.close()


def check_kind(kind: str, url: str) -> None:
    found = asyncio.run(_kind(url))
    if kind == "scan" and found != "scan":
        pytest.skip(f"this machine's Redis has a vector index ({found}): no plain Redis to test")
    assert found == kind


def lazy_expiry(url: str) -> None:
    """Keys that expire stay until read: what a busy Redis may do for a while."""
    redis.Redis.from_url(url).execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")


def test_each_index_finds_the_nearest_entry_with_its_cosine(server: tuple[str, str]) -> None:
    kind, url = server
    check_kind(kind, url)
    if kind != "scan":  # the machine's Redis may refuse DEBUG; its index checks expiry itself
        lazy_expiry(url)
    gateway, partition = unique("vidx"), os.urandom(20).hex()
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(6, SIZE)))
    query = unit(vectors[2] + 0.6 * rng.normal(size=SIZE) / np.sqrt(SIZE))
    scores = vectors @ query

    async def scenario() -> None:
        cache = RedisCache(url)
        try:
            for i, vector in enumerate(vectors):
                await cache.put(gateway, f"entry{i}", b"answer", 60, (partition, vector))
            found = await cache.nearest(gateway, partition, query)
            assert found is not None
            assert found[0] == "entry2"
            assert found[1] == pytest.approx(float(scores[2]), abs=1e-4)
            # Another partition, and another gateway, see none of these vectors.
            assert await cache.nearest(gateway, os.urandom(20).hex(), query) is None
            assert await cache.nearest(unique("vidx"), partition, query) is None
            # A closer vector that expires: found while it lives, never after, even while
            # its expired key is still in Redis; and it hides no live vector behind it.
            await cache.put(gateway, "brief", b"answer", 0.4, (partition, query))
            found = await cache.nearest(gateway, partition, query)
            assert found is not None
            assert found[0] == "brief"
            assert found[1] == pytest.approx(1.0, abs=1e-4)
            await asyncio.sleep(0.5)
            found = await cache.nearest(gateway, partition, query)
            assert found is not None
            assert found[0] == "entry2"
            # Vectors of another size (the rule's embedder changed) do not mix with these.
            other = unit(rng.normal(size=2 * SIZE))
            await cache.put(gateway, "wider", b"answer", 60, (partition, other))
            found = await cache.nearest(gateway, partition, other)
            assert found is not None
            assert found[0] == "wider"
            found = await cache.nearest(gateway, partition, query)
            assert found is not None
            assert found[0] == "entry2"
        finally:
            await cache.close()

    asyncio.run(scenario())


def test_the_query_engine_index_comes_back_after_the_server_lost_it(tmp_path: Path) -> None:
    with redis_servers(tmp_path) as servers:
        port = servers.redis8(search=True)
        url = f"redis://127.0.0.1:{port}/0"
        gateway, partition = unique("vidx"), os.urandom(20).hex()
        vector = unit(np.arange(1, SIZE + 1))

        async def scenario() -> None:
            cache = RedisCache(url)
            try:
                await cache.put(gateway, "one", b"answer", 60, (partition, vector))
                assert await cache.nearest(gateway, partition, vector) is not None
                await cache.client.flushall()  # drops the entries and the index with them
                assert await cache.nearest(gateway, partition, vector) is None
                await cache.put(gateway, "two", b"answer", 60, (partition, vector))
                found = await cache.nearest(gateway, partition, vector)
                assert found is not None
                assert found[0] == "two"
            finally:
                await cache.close()

        asyncio.run(scenario())
        indexes = redis.Redis(port=port).execute_command("FT._LIST")
        assert f"sluicegate:cache:idx{SIZE}".encode() in indexes


def test_a_full_vector_set_sweeps_its_expired_elements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_vectors, "MAX_SET", 3)
    monkeypatch.setattr(redis_vectors, "SWEEP_FROM", 3)
    with redis_servers(tmp_path) as servers:
        port = servers.redis8(search=False)
        url = f"redis://127.0.0.1:{port}/0"
        gateway, partition = unique("vidx"), os.urandom(20).hex()
        rows = unit(np.random.default_rng(3).normal(size=(4, SIZE)))
        name = redis_vectors.VectorSetIndex.name(gateway, partition, SIZE)
        store = redis.Redis(port=port)

        async def scenario() -> None:
            cache = RedisCache(url)
            try:
                await cache.put(gateway, "lasting", b"a", 60, (partition, rows[0]))
                await cache.put(gateway, "brief1", b"a", 0.2, (partition, rows[1]))
                await cache.put(gateway, "brief2", b"a", 0.2, (partition, rows[2]))
                assert store.execute_command("VCARD", name) == 3
                await asyncio.sleep(0.4)
                await cache.put(gateway, "new", b"a", 60, (partition, rows[3]))
                found = await cache.nearest(gateway, partition, rows[3])
                assert found is not None
                assert found[0] == "new"
            finally:
                await cache.close()

        asyncio.run(scenario())
        members = store.execute_command("VSIM", name, "ELE", "lasting", "COUNT", "10")
        assert sorted(m.decode() for m in members) == ["lasting", "new"]


@local_model
def test_two_gateways_share_semantic_hits_through_each_index(
    server: tuple[str, str], fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    from sluicegate.cache.minilm import MiniLM

    kind, url = server
    check_kind(kind, url)
    name = unique("semantic-gw")
    cfg = {
        "gateway": {"name": name, "redis": url},
        "services": [openai_service("openai", fake_openai.port)],
        "rules": [
            {
                "name": "chat",
                "targets": [{"service": "openai"}],
                "policies": {"cache": {"mode": "semantic"}},
            }
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
        "audit": {"enabled": False},
    }
    first, second = start_gateway(cfg), start_gateway(cfg)
    model = unique("semantic-index")
    question, paraphrase = "What is the capital of France?", "Tell me France's capital city"
    assert ask(first, model, question).headers["x-sluicegate-cache"] == "miss"
    store = redis.Redis.from_url(url)
    mine = f"sluicegate:cache:*{name}:*"  # the entry and its vector, whatever the index
    deadline = time.monotonic() + 5
    while len(store.keys(mine)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    hit = ask(second, model, paraphrase)
    assert hit.headers["x-sluicegate-cache"] == "hit"
    similarity = float(hit.headers["x-sluicegate-cache-similarity"])
    local = MiniLM()
    expected = float(local.embed(question) @ local.embed(paraphrase))
    assert similarity == pytest.approx(expected, abs=2e-4)
    assert similarity >= DEFAULT_THRESHOLD
    assert ask(second, model, "How long should I bake sourdough bread?").headers[
        "x-sluicegate-cache"
    ] == ("miss")
    assert ask(second, model, paraphrase, system="Answer in French.").headers[
        "x-sluicegate-cache"
    ] == ("miss")
    assert fake_openai.calls[model] == 3

    # The vectors went to the index this server offers.
    types = {store.type(k).decode() for k in store.keys(mine)} - {"string"}  # not entries
    assert types == {"scan": {"hash"}, "search": {"hash"}, "vectorset": {"vectorset"}}[kind]
    if kind == "search":
        assert f"sluicegate:cache:idx{SIZE}".encode() in store.execute_command("FT._LIST")
    store.delete(*store.keys(mine))
