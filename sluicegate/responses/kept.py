"""Where the gateway keeps responses for follow-ups: the store when there is one, with a
cache in this process in front of it; in this process only without a store.

A response is written before its client sees it complete, so a follow-up sent the
moment it arrived finds it, on this instance (the cache) or on any other (the store).
The cache spares a follow-up reading the conversation back from the store, not asking
whether it is still there: a follow-up answered from the cache first looks its id up in
the store (the key only), so a response deleted through any instance is gone on all of
them at once. GET, DELETE and the input items always read the store.

The cache holds a response as its JSON, not as Python objects: its size is then exact,
and the thousands of responses a busy process holds add nothing for the cyclic garbage
collector to walk on every collection. A follow-up decodes the one it names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import orjson

from sluicegate.errors import StoreUnavailable
from sluicegate.stores.base import Store, StoreUnreachable
from sluicegate.stores.responses import KeptResponse

log = logging.getLogger("sluicegate")

CACHE_BYTES = 64 * 1024 * 1024  # a response holds its whole conversation: bounded by size
CACHE_SECONDS = 300.0
MEMORY_BYTES = 256 * 1024 * 1024  # without a store, the oldest responses beyond are forgotten
PURGE_EVERY = 256  # writes between two deletions of expired rows
PURGE_BATCH = 1000


class KeptResponses:
    def __init__(self, store: Store | None, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        # id -> (the response, its JSON and its input's, until when this copy may answer a
        # follow-up (monotonic), size, whether the store has it too)
        self._cache: OrderedDict[str, tuple[_Packed, float, int, bool]] = OrderedDict()
        self._limit = CACHE_BYTES if store is not None else MEMORY_BYTES
        self._bytes = 0
        self._writes = 0
        self._purging: asyncio.Task[None] | None = None

    def _remember(self, kept: KeptResponse, stored: bool, encoded: bytes | None) -> None:
        lasts = time.monotonic() + CACHE_SECONDS if self.store is not None else float("inf")
        packed = _Packed(kept, encoded)
        size = len(packed.response) + len(packed.input)
        self._forget(kept.id)
        self._cache[kept.id] = (packed, lasts, size, stored)
        self._bytes += size
        while self._bytes > self._limit and len(self._cache) > 1:
            self._forget(next(iter(self._cache)))

    def _forget(self, id: str) -> None:
        held = self._cache.pop(id, None)
        if held is not None:
            self._bytes -= held[2]

    async def put(self, kept: KeptResponse, encoded: bytes | None = None) -> None:
        """Keep ``kept``; ``encoded``: its response's JSON when already written."""
        if self.store is None:
            self._remember(kept, False, encoded)
            return
        try:
            await self.store.put_response(kept)
        except StoreUnreachable:
            # No other instance knows it, so none can delete it: this copy needs no check.
            self._remember(kept, False, encoded)
            raise StoreUnavailable(
                "The store that keeps responses does not answer.", code="store_unavailable"
            ) from None
        self._remember(kept, True, encoded)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0 and self._purging is None:
            self._purging = asyncio.create_task(self._purge())

    async def _purge(self) -> None:
        assert self.store is not None
        try:
            await self.store.purge_responses(time.time(), PURGE_BATCH)
        except StoreUnreachable:
            pass  # the next round tries again; expired rows are never read meanwhile
        finally:
            self._purging = None

    async def get(
        self, id: str, gateway: str, consumer: str, cached: bool = True
    ) -> KeptResponse | None:
        """The response of this id if it is the caller's and has not expired; ``cached``:
        this process's copy may answer (a follow-up), else the store is read."""
        now = time.time()
        kept: KeptResponse | _Packed | None = None
        held = self._cache.get(id)
        if held is not None and (self.store is None or (cached and held[1] > time.monotonic())):
            kept = held[0]
            self._cache.move_to_end(id)  # the least recently used go first
            if held[3] and not await self._alive(id, now):
                self._forget(id)  # deleted through another instance
                return None
        elif self.store is not None:
            try:
                kept = await self.store.kept_response(id, now)
            except StoreUnreachable:
                raise StoreUnavailable(
                    "The store that keeps responses does not answer; retry.",
                    code="store_unavailable",
                ) from None
            if kept is None:
                self._forget(id)
        if kept is None or kept.expires_at <= now:
            return None
        if (kept.gateway, kept.consumer) != (gateway, consumer):
            return None  # another's: as unknown as one that never was
        return kept.unpack() if isinstance(kept, _Packed) else kept

    async def _alive(self, id: str, now: float) -> bool:
        assert self.store is not None
        try:
            return await self.store.response_alive(id, now)
        except StoreUnreachable:
            raise StoreUnavailable(
                "The store that keeps responses does not answer; retry.",
                code="store_unavailable",
            ) from None

    async def delete(self, kept: KeptResponse) -> None:
        self._forget(kept.id)
        if self.store is None:
            return
        try:
            await self.store.delete_response(kept.id)
        except StoreUnreachable:
            raise StoreUnavailable(
                "The store that keeps responses does not answer; retry.", code="store_unavailable"
            ) from None

    async def close(self) -> None:
        if self._purging is not None:
            await asyncio.gather(self._purging, return_exceptions=True)


class _Packed:
    """A kept response as the cache holds it: its JSON (two bytes objects, which the
    garbage collector does not track) beside the few fields a lookup reads."""

    __slots__ = ("consumer", "created_at", "expires_at", "gateway", "id", "input", "response")

    def __init__(self, kept: KeptResponse, encoded: bytes | None) -> None:
        self.id, self.gateway, self.consumer = kept.id, kept.gateway, kept.consumer
        self.created_at, self.expires_at = kept.created_at, kept.expires_at
        # Copied: a bytes object orjson wrote keeps the whole buffer it grew (kilobytes
        # each), which thousands of kept responses would hold on to.
        self.response = _exact(orjson.dumps(kept.response) if encoded is None else encoded)
        self.input = _exact(orjson.dumps(kept.input))

    def unpack(self) -> KeptResponse:
        return KeptResponse(
            self.id,
            self.gateway,
            self.consumer,
            self.created_at,
            self.expires_at,
            orjson.loads(self.response),
            orjson.loads(self.input),
        )


def _exact(data: bytes) -> bytes:
    return bytes(memoryview(data))


def _size(kept: KeptResponse) -> int:
    """About what a kept response holds in memory: its JSON's size."""
    return len(orjson.dumps(kept.response)) + len(orjson.dumps(kept.input))
