"""Cache entries and semantic vectors in Redis, shared by every instance.

Entries are plain keys with a TTL (``SET PX``). The server here may not have
vector search (Redis Stack's query engine), so the semantic index uses the
documented fallback that works on any Redis: a partition is one hash mapping
entry keys to their vector and expiry time; a lookup reads the partition
(``HGETALL``, one round trip) and compares in the gateway. Partitions are
capped (``MAX_PARTITION``) so a lookup stays one bounded read.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from sluicegate.stores.redis_client import connect_redis

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector

log = logging.getLogger("sluicegate.cache")

PREFIX = "sluicegate:cache:"
MAX_PARTITION = 2048  # vectors per partition (one rule, model, system prompt, history)
_EXPIRY = struct.Struct("<d")


class RedisCache:
    """One client per Redis URL; a Redis that fails makes lookups miss, never requests fail."""

    def __init__(self, url: str) -> None:
        self._connection = connect_redis(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.client: Any = self._connection.client  # standalone, Sentinel's master or a cluster
        self._down = False

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            log.warning("cache: Redis unavailable (%s); serving without it", type(exc).__name__)
        self._down = True

    def _ok(self) -> None:
        if self._down:
            log.info("cache: Redis is back")
        self._down = False

    @staticmethod
    def entry_key(gateway: str, key: str) -> str:
        return f"{PREFIX}{gateway}:{key}"

    @staticmethod
    def partition_key(gateway: str, partition: str) -> str:
        return f"{PREFIX}{gateway}:v:{partition}"

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
        millis = max(int(ttl * 1000), 1)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.entry_key(gateway, key), value, px=millis)
                if vector is not None:
                    partition, vec = vector
                    name = self.partition_key(gateway, partition)
                    field = _EXPIRY.pack(time.time() + ttl) + vec.tobytes()
                    pipe.hset(name, key, field)
                    # The hash lives as long as its newest vector; old ones are pruned on read.
                    pipe.pexpire(name, millis, gt=True)
                    pipe.pexpire(name, millis, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._ok()

    async def room(self, gateway: str, partition: str) -> bool:
        try:
            size: int = await self.client.hlen(self.partition_key(gateway, partition))
        except (RedisError, OSError):
            return False
        return size < MAX_PARTITION

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        import numpy as np

        name = self.partition_key(gateway, partition)
        try:
            fields: dict[bytes, bytes] = await self.client.hgetall(name)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._ok()
        now = time.time()
        keys: list[str] = []
        rows: list[Vector] = []
        stale: list[bytes] = []
        for field, value in fields.items():
            (expires,) = _EXPIRY.unpack_from(value)
            if expires <= now:
                stale.append(field)
                continue
            keys.append(field.decode())
            rows.append(np.frombuffer(value, dtype=np.float32, offset=_EXPIRY.size))
        if stale:
            with contextlib.suppress(RedisError, OSError):
                await self.client.hdel(name, *stale)
        if not rows:
            return None
        scores = np.stack(rows) @ vector
        best = int(scores.argmax())
        return keys[best], float(scores[best])

    async def close(self) -> None:
        await self._connection.close()
