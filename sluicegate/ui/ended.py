"""Dashboard sessions ended by logout, kept where every instance sees them.

A session cookie holds on every instance that shares the admin key until it expires
(ui/session.py), so a logout must reach all of them, and a restarted one too. The ended
session is kept until it would have expired anyway: in the store (``gateway.store``),
else in Redis (``gateway.redis``), else, with neither, in this process only. What is kept
is the SHA-256 of the cookie's nonce, never the nonce itself.

Each instance also remembers the sessions it has seen ended, so that it asks the store
only about cookies it has not refused before.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sluicegate.stores.base import Store, StoreUnreachable

if TYPE_CHECKING:
    from sluicegate.runtime import Runtime

_REDIS_PREFIX = "sluicegate:ui:ended:"


class Shared(Protocol):
    async def end(self, digest: str, expires: float) -> None: ...

    async def ended(self, digest: str) -> bool: ...

    async def close(self) -> None: ...


class _InStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def end(self, digest: str, expires: float) -> None:
        await self.store.end_session(digest, datetime.fromtimestamp(expires, UTC))

    async def ended(self, digest: str) -> bool:
        return await self.store.session_ended(digest)

    async def close(self) -> None:
        pass  # the runtime closes the store


class _InRedis:
    """Keys that expire with the session, so Redis forgets them on its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None  # made in the event loop that uses it

    def _client(self) -> Any:
        if self._connection is None:
            from sluicegate.stores.redis_client import connect_redis

            self._connection = connect_redis(
                self.url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        return self._connection.client

    async def _call(self, *args: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await self._client().execute_command(*args)
        except (RedisError, OSError) as exc:  # the check fails closed: a 503, never a pass
            raise StoreUnreachable(type(exc).__name__) from exc

    async def end(self, digest: str, expires: float) -> None:
        await self._call("SET", _REDIS_PREFIX + digest, "1", "EXAT", int(expires) + 1)

    async def ended(self, digest: str) -> bool:
        return bool(await self._call("EXISTS", _REDIS_PREFIX + digest))

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


class EndedSessions:
    """Which sessions were ended by logout: this process's, and every instance's."""

    def __init__(self, shared: Shared | None) -> None:
        self.shared = shared
        self._known: dict[str, float] = {}  # digest -> when the session expires

    @classmethod
    def of(cls, runtime: Runtime) -> EndedSessions:
        if runtime.store is not None:
            return cls(_InStore(runtime.store))
        redis = runtime.file.config.gateway.redis
        return cls(_InRedis(redis) if redis else None)

    @staticmethod
    def _digest(nonce: str) -> str:
        return hashlib.sha256(nonce.encode()).hexdigest()

    async def end(self, nonce: str, expires: float) -> None:
        """End the session of ``nonce`` until ``expires``, for every instance."""
        digest = self._digest(nonce)
        if self.shared is not None:  # first: a logout that did not reach it is a 503
            await self.shared.end(digest, expires)
        now = time.time()
        self._known = {d: t for d, t in self._known.items() if t > now}
        self._known[digest] = expires

    async def ended(self, nonce: str, expires: float) -> bool:
        """Whether the session of ``nonce`` (which lasts until ``expires``) was ended."""
        digest = self._digest(nonce)
        if digest in self._known:
            return True
        if self.shared is None or not await self.shared.ended(digest):
            return False
        self._known[digest] = expires
        return True

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
