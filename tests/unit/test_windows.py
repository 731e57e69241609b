"""The sliding-window counters: exact inside a window, all or nothing across limits."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sluicegate.policies.windows import Counters, Item, MemoryCounters, RedisCounters


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Counters:
    # Each test closes its counters inside its own event loop (Redis clients belong to one).
    if request.param == "memory":
        return MemoryCounters()
    return RedisCounters("redis://127.0.0.1:6379/0")


def key() -> str:
    return f"sg:test:{uuid.uuid4().hex}"


def test_exactly_the_limit_is_let_through(counters: Counters) -> None:
    item = Item(key(), limit=10, amount=1, slice_ms=1000)

    async def run() -> list[bool]:
        results = []
        for _ in range(15):
            results.append((await counters.reserve([item])).allowed)
        await counters.close()
        return results

    results = asyncio.run(run())
    assert results == [True] * 10 + [False] * 5


def test_all_or_nothing_across_items(counters: Counters) -> None:
    small = Item(key(), limit=2, amount=1, slice_ms=1000)
    large = Item(key(), limit=100, amount=1, slice_ms=1000)

    async def run() -> tuple[list[bool], int]:
        allowed = [(await counters.reserve([small, large])).allowed for _ in range(4)]
        reading = (await counters.reserve([large])).readings[0]
        await counters.close()
        return allowed, reading.used

    allowed, used = asyncio.run(run())
    assert allowed == [True, True, False, False]
    assert used == 2  # refused requests reserved nothing on the larger limit either


def test_tokens_reserve_and_adjust(counters: Counters) -> None:
    item = Item(key(), limit=1000, amount=400, slice_ms=1000)

    async def run() -> list[int]:
        first = await counters.reserve([item])
        await counters.adjust([(item, first.readings[0].slice, -300)])  # used 100, not 400
        second = await counters.reserve([item])
        third = await counters.reserve([item])
        refused = await counters.reserve([item])
        await counters.close()
        return [second.readings[0].used, third.readings[0].used, int(refused.allowed)]

    assert asyncio.run(run()) == [100, 500, 0]


def test_amounts_leave_the_window() -> None:
    counters = MemoryCounters()
    item = Item(key(), limit=2, amount=1, slice_ms=5)  # a 300 ms window

    async def run() -> list[bool]:
        out = [(await counters.reserve([item])).allowed for _ in range(3)]
        await asyncio.sleep(0.35)
        out.append((await counters.reserve([item])).allowed)
        return out

    assert asyncio.run(run()) == [True, True, False, True]
