"""Cache entries and semantic vectors in Redis, shared by every instance.

Entries are plain keys with a TTL (``SET PX``). Semantic vectors go to the
best index the server offers (``redis_vectors``): its query engine, its vector
sets, or, on any Redis, hashes compared in the gateway.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError, ResponseError

from sluicegate.cache.redis_vectors import PREFIX, VectorIndex, detect, ttl_millis
from sluicegate.stores.redis_client import connect_redis

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector

log = logging.getLogger("sluicegate.cache")


class RedisCache:
    """One client per Redis URL; a Redis that fails makes lookups miss, never requests fail."""

    def __init__(self, url: str) -> None:
        self._connection = connect_redis(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.client: Any = self._connection.client  # standalone, Sentinel's master or a cluster
        self._down = False
        self._index: VectorIndex | None = None  # found on the first semantic use

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            log.warning("cache: Redis unavailable (%s); serving without it", type(exc).__name__)
        self._down = True
        self._index = None  # the server may come back as another one: ask it again

    def _ok(self) -> None:
        if self._down:
            log.info("cache: Redis is back")
        self._down = False

    @staticmethod
    def entry_key(gateway: str, key: str) -> str:
        return f"{PREFIX}{gateway}:{key}"

    async def vectors(self) -> VectorIndex:
        if self._index is None:
            self._index = await detect(self.client, self._connection.cluster)
            log.info("cache: semantic vectors in Redis use its %s index", self._index.kind)
        return self._index

    async def get(self, gateway: str, key: str) -> bytes | None:
        try:
            value: bytes | None = await self.client.get(self.entry_key(gateway, key))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._ok()
        return value

    async def put(
        self,
        gateway: str,
        key: str,
        value: bytes,
        ttl: float,
        vector: tuple[str, Vector] | None = None,
    ) -> None:
        """Store an entry and, when there is room in its partition, its vector."""
        index = None
        if vector is not None:
            try:
                index = await self.vectors()
                if not await index.room(gateway, vector[0], vector[1]):
                    index = None
            except ResponseError as exc:  # the index refused: the entry is still kept
                log.warning("cache: the vector index refused a vector (%s)", exc)
                index = None
            except (RedisError, OSError) as exc:
                self._failed(exc)
                return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.entry_key(gateway, key), value, px=ttl_millis(ttl))
                if index is not None and vector is not None:
                    index.stage(pipe, gateway, vector[0], key, vector[1], ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._ok()

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        """The nearest entry key and its similarity; None when Redis fails (a miss)."""
        try:
            found = await (await self.vectors()).nearest(gateway, partition, vector)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # a reply not understood
            log.warning("cache: an unreadable vector search reply (%s)", type(exc).__name__)
            return None
        self._ok()
        return found

    async def close(self) -> None:
        await self._connection.close()
