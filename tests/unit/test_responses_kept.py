"""Kept responses in the process: owner checks, expiry, and a cache bounded by size."""

from __future__ import annotations

import asyncio
import time

from sluicegate.responses import kept as kept_module
from sluicegate.responses.kept import KeptResponses
from sluicegate.stores.responses import KeptResponse


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
