"""Sliding-window counters: in process, or in Redis for many instances.

A window is cut into ``SLICES`` equal slices; an amount counts in the slice
of the moment it was reserved and drops out when that slice leaves the
window. So "100 requests per minute" means at most 100 in any 60 s, to within
one slice (1 s). Every limit that applies to a request is checked and
reserved together, all or nothing, in one step: one Lua script in Redis (one
round trip), one synchronous function in process. Nothing is cached locally,
so the effective limit can never exceed the configured one, however many
instances share the Redis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sluicegate.stores.redis_client import RedisConnection, connect_redis
from sluicegate.stores.resp import Resp, Script, lean_target

SLICES = 60


@dataclass(frozen=True, slots=True)
class Item:
    """One counter a request must fit in."""

    key: str
    limit: int
    amount: int
    slice_ms: int


@dataclass(slots=True)
class Reading:
    used: int  # before this request
    reset_s: float  # until the oldest counted slice leaves the window
    slice: int  # where this request's amount was counted


@dataclass(slots=True)
class Verdict:
    allowed: bool
    readings: list[Reading]


class Counters(Protocol):
    async def reserve(self, items: Sequence[Item]) -> Verdict: ...

    async def adjust(self, changes: Sequence[tuple[Item, int, int]]) -> None:
        """Add ``delta`` to ``item``'s count in ``slice``: (item, slice, delta)."""
        ...

    async def close(self) -> None: ...


def _first(current: int) -> int:
    return current - SLICES + 1


class MemoryCounters:
    """For one process: plain dicts, safe because the event loop runs one step at a time."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[int, int]] = {}

    async def reserve(self, items: Sequence[Item]) -> Verdict:
        now_ms = int(time.time() * 1000)
        readings = []
        allowed = True
        for item in items:
            current = now_ms // item.slice_ms
            first = _first(current)
            slices = self._counts.get(item.key)
            used, oldest = 0, current
            if slices:
                for index in [i for i in slices if i < first]:
                    del slices[index]
                used = sum(slices.values())
                oldest = min((i for i, v in slices.items() if v > 0), default=current)
            if used + item.amount > item.limit:
                allowed = False
            reset = ((oldest + SLICES) * item.slice_ms - now_ms) / 1000
            readings.append(Reading(used, reset, current))
        if allowed:
            for item, reading in zip(items, readings, strict=True):
                if item.amount:
                    slices = self._counts.setdefault(item.key, {})
                    slices[reading.slice] = slices.get(reading.slice, 0) + item.amount
        return Verdict(allowed, readings)

    async def adjust(self, changes: Sequence[tuple[Item, int, int]]) -> None:
        for item, index, delta in changes:
            slices = self._counts.get(item.key)
            if slices is not None and index in slices:
                slices[index] = max(slices[index] + delta, 0)

    async def close(self) -> None:
        self._counts.clear()


# KEYS: one per item. ARGV: limit, amount, slice_ms for each item, in order.
# Returns {allowed, used1, reset_ms1, slice1, used2, ...}; Redis's own clock
# is the one clock all instances share.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {1}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[i * 3 - 2])
  local amount = tonumber(ARGV[i * 3 - 1])
  local slice_ms = tonumber(ARGV[i * 3])
  local current = math.floor(now / slice_ms)
  local first = current - __SLICES__ + 1
  local fields = redis.call('HGETALL', KEYS[i])
  local used, oldest = 0, current
  for j = 1, #fields, 2 do
    local index = tonumber(fields[j])
    if index < first then
      redis.call('HDEL', KEYS[i], fields[j])
    else
      local value = tonumber(fields[j + 1])
      used = used + value
      if value > 0 and index < oldest then oldest = index end
    end
  end
  if used + amount > limit then out[1] = 0 end
  out[#out + 1] = used
  out[#out + 1] = (oldest + __SLICES__) * slice_ms - now
  out[#out + 1] = current
end
if out[1] == 1 then
  for i = 1, #KEYS do
    local amount = tonumber(ARGV[i * 3 - 1])
    local slice_ms = tonumber(ARGV[i * 3])
    if amount ~= 0 then redis.call('HINCRBY', KEYS[i], out[i * 3 + 1], amount) end
    redis.call('PEXPIRE', KEYS[i], slice_ms * __SLICES__ + 1000)
  end
end
return out
""".replace("__SLICES__", str(SLICES))

_ADJUST = """
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[i * 2 - 1]) == 1 then
    local value = redis.call('HINCRBY', KEYS[i], ARGV[i * 2 - 1], ARGV[i * 2])
    if value < 0 then redis.call('HSET', KEYS[i], ARGV[i * 2 - 1], 0) end
  end
end
return 1
"""


class RedisCounters:
    """Shared by every instance on one Redis; one script call per step.

    A script's keys must share one Redis Cluster slot: the callers give every
    key of a request the same hash tag (``{gateway}``, see ``rate_limit``), so
    the one-step, all-or-nothing check holds on a cluster too.
    """

    def __init__(self, url: str) -> None:
        self._connection: RedisConnection | None = None
        self._lean: Resp | None = None
        self._reserve: Any
        self._adjust: Any
        if lean_target(url) is not None:
            # One plain server: the pipelined client, which costs a quarter less CPU per
            # request than redis-py's pool (docs/performance.md).
            self._lean = Resp(url, timeout=0.5)
            self._reserve = Script(self._lean, _RESERVE)
            self._adjust = Script(self._lean, _ADJUST)
        else:
            self._connection = connect_redis(
                url, socket_connect_timeout=0.5, socket_timeout=0.5, health_check_interval=0
            )
            client: Any = self._connection.client
            self._reserve = client.register_script(_RESERVE)
            self._adjust = client.register_script(_ADJUST)

    async def reserve(self, items: Sequence[Item]) -> Verdict:
        args: list[int] = []
        for item in items:
            args += [item.limit, item.amount, item.slice_ms]
        out = await self._reserve(keys=[i.key for i in items], args=args)
        readings = [
            Reading(int(out[k]), int(out[k + 1]) / 1000, int(out[k + 2]))
            for k in range(1, len(out), 3)
        ]
        return Verdict(out[0] == 1, readings)

    async def adjust(self, changes: Sequence[tuple[Item, int, int]]) -> None:
        changes = [c for c in changes if c[2]]
        if not changes:
            return
        args: list[int] = []
        for _, index, delta in changes:
            args += [index, delta]
        await self._adjust(keys=[c[0].key for c in changes], args=args)

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        if self._connection is not None:
            await self._connection.close()
