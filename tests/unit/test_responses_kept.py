"""Kept responses in the process: owner checks, expiry, and a cache bounded by size."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from sluicegate.errors import StoreUnavailable
from sluicegate.responses import kept as kept_module
from sluicegate.responses.kept import KeptResponses
from sluicegate.stores.open import open_store
from sluicegate.stores.responses import KeptResponse
from tests.fakes.stores import BACKENDS, store_url


def response(id: str, consumer: str = "a", ttl: float = 60, text: str = "x") -> KeptResponse:
    now = time.time()
    return KeptResponse(
        id, "default", consumer, now, now + ttl, {"id": id, "output": []}, [{"t": text}]
    )


def test_only_the_owner_finds_it_until_it_expires() -> None:
    async def run() -> None:
        kept = KeptResponses(None, 60)
        await kept.put(response("r1"))
        await kept.put(response("r2", ttl=-1))
        assert (await kept.get("r1", "default", "a")) is not None
        assert await kept.get("r1", "default", "b") is None
        assert await kept.get("r1", "other-gateway", "a") is None
        assert await kept.get("r2", "default", "a") is None
        found = await kept.get("r1", "default", "a")
        assert found is not None
        await kept.delete(found)
        assert await kept.get("r1", "default", "a") is None

    asyncio.run(run())


def test_the_least_recently_used_go_first() -> None:
    async def run() -> None:
        kept = KeptResponses(None, 60)
        one = kept_module._size(response("r0", text="y" * 1000))
        kept._limit = one * 3
        for i in range(3):
            await kept.put(response(f"r{i}", text="y" * 1000))
        assert await kept.get("r0", "default", "a") is not None  # used: now the newest
        await kept.put(response("r3", text="y" * 1000))
        assert await kept.get("r1", "default", "a") is None
        assert all([await kept.get(f"r{i}", "default", "a") for i in (0, 2, 3)])
        assert kept._bytes == one * 3

    asyncio.run(run())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_copy_answers_only_while_the_store_still_has_it(backend: str, tmp_path: Path) -> None:
    async def run(url: str) -> None:
        store = open_store(url)
        await store.open()
        try:
            here, there = KeptResponses(store, 60), KeptResponses(store, 60)
            await here.put(response("r1"))
            await here.put(response("r2", ttl=0.5))
            assert await store.response_alive("r1", time.time())
            assert not await store.response_alive("nope", time.time())
            assert not await store.response_alive("r2", time.time() + 1)
            found = await there.get("r1", "default", "a", cached=False)
            assert found is not None
            await there.delete(found)
            assert await here.get("r1", "default", "a") is None
            assert "r1" not in here._cache  # the stale copy is let go
            assert await here.get("r2", "default", "a") is not None
        finally:
            await store.close()

    with store_url(backend, tmp_path) as url:
        asyncio.run(run(url))


def test_a_copy_the_store_never_got_answers_without_asking_it(tmp_path: Path) -> None:
    async def run() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'sluicegate.db'}")
        await store.open()
        try:
            kept = KeptResponses(store, 60)
            await kept.put(response("stored"))
            db = sqlite3.connect(tmp_path / "sluicegate.db")
            db.execute("ALTER TABLE sluicegate_responses RENAME TO gone")  # unreadable now
            db.commit()
            db.close()
            with pytest.raises(StoreUnavailable):
                await kept.put(response("unstored"))
            # No other instance can have deleted what the store never got.
            assert await kept.get("unstored", "default", "a") is not None
            # A copy the store has is not trusted without asking it.
            with pytest.raises(StoreUnavailable):
                await kept.get("stored", "default", "a")
        finally:
            await store.close()

    asyncio.run(run())
