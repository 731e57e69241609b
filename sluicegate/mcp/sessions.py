"""Client sessions: who holds one, what it agreed, and its session at each server.

Kept in process, or in Redis when ``gateway.redis`` is set, so that any instance serves
any session: a record is read from Redis on every request (``GETEX``, which also renews
its idle expiry) and written back when a server session changes. Without Redis, the
workers of one ``serve --workers N`` keep them in a file they share (``session_file``),
so that any worker serves any session of the instance. A session idle for ``IDLE``
seconds is gone.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluicegate.errors import RedisCallFailed
from sluicegate.mcp.session_file import SessionFile
from sluicegate.mcp.wire import Message
from sluicegate.stores.redis_client import RedisConnection, connect_redis
from sluicegate.stores.resp import Resp, lean_target

IDLE = 3600.0


class SessionsUnavailable(Exception):
    """Where sessions are kept (Redis, the workers' file) did not answer."""


def _out_of_reach(exc: Exception) -> bool:
    """A failure of the sessions' store (redis-py's errors named by module: importing
    redis-py for its exception types alone would load all of it)."""
    if isinstance(exc, RedisCallFailed | OSError | TimeoutError):
        return True
    return type(exc).__module__.startswith("redis.")


_PREFIX = "sluicegate:mcp:session:"


@dataclass(slots=True)
class McpSession:
    id: str
    gateway: str
    consumer: str
    server: str | None  # /mcp/{server}; None: the aggregated /mcp
    version: str  # the protocol version agreed with the client
    params: Message  # the client's initialize params: each server session is opened with them
    upstream: dict[str, list[Any]] = field(default_factory=dict)  # server → [session, version]

    def dumps(self) -> bytes:
        return orjson.dumps(
            {
                "gateway": self.gateway,
                "consumer": self.consumer,
                "server": self.server,
                "version": self.version,
                "params": self.params,
                "upstream": self.upstream,
            }
        )

    @classmethod
    def loads(cls, session_id: str, raw: bytes) -> McpSession:
        doc = orjson.loads(raw)
        return cls(
            session_id,
            doc["gateway"],
            doc["consumer"],
            doc["server"],
            doc["version"],
            doc["params"],
            doc["upstream"],
        )


def new_id() -> str:
    return secrets.token_urlsafe(24)


class Sessions:
    def __init__(
        self, redis_url: str | None, idle: float = IDLE, workers_file: str | None = None
    ) -> None:
        self.idle = idle
        self._ms = max(1, int(idle * 1000))
        self._url = redis_url
        self._redis: RedisConnection | None = None
        # A plain redis:// server is asked through the lean client (one pipelined
        # connection, as the rate limiter does); TLS, Sentinel and Cluster through redis-py.
        self._lean = Resp(redis_url, timeout=2.0) if redis_url and lean_target(redis_url) else None
        self._local: dict[str, tuple[float, bytes]] = {}  # id → (last use, record)
        self._pruned = 0.0  # when expired sessions were last dropped from _local
        # ``workers_file``: the file of this run's workers (``sluicegate.workers``).
        self._file = SessionFile(workers_file, idle) if workers_file and not redis_url else None

    @property
    def shared(self) -> bool:
        return self._url is not None or self._file is not None

    def _client(self) -> Any:
        if self._redis is None:
            assert self._url is not None
            self._redis = connect_redis(self._url, socket_timeout=2.0)
        return self._redis.client

    async def _get(self, session_id: str) -> McpSession | None:
        if not 16 <= len(session_id) <= 64:
            return None
        if self._lean is not None:
            answer = await self._lean.call("GETEX", _PREFIX + session_id, "PX", self._ms)
            if isinstance(answer, Exception):
                raise answer
            return McpSession.loads(session_id, answer) if isinstance(answer, bytes) else None
        if self._url is not None:
            raw = await self._client().getex(_PREFIX + session_id, px=self._ms)
            return McpSession.loads(session_id, raw) if raw is not None else None
        if self._file is not None:
            raw = self._file.get(session_id)
            return McpSession.loads(session_id, raw) if raw is not None else None
        now = time.monotonic()
        found = self._local.get(session_id)
        if found is None or now - found[0] > self.idle:
            self._local.pop(session_id, None)
            return None
        self._local[session_id] = (now, found[1])
        return McpSession.loads(session_id, found[1])

    async def _put(self, session: McpSession) -> None:
        raw = session.dumps()
        if self._lean is not None:
            answer = await self._lean.call("SET", _PREFIX + session.id, raw, "PX", self._ms)
            if isinstance(answer, Exception):
                raise answer
            return
        if self._url is not None:
            await self._client().set(_PREFIX + session.id, raw, px=self._ms)
            return
        if self._file is not None:
            self._file.put(session.id, raw)
            return
        now = time.monotonic()
        # Expired sessions go in one sweep now and then, not one per new session.
        if len(self._local) > 1024 and now - self._pruned > min(self.idle, 10.0):
            self._pruned = now
            self._local = {k: v for k, v in self._local.items() if now - v[0] <= self.idle}
        self._local[session.id] = (now, raw)

    async def _drop(self, session_id: str) -> None:
        if self._lean is not None:
            await self._lean.call("DEL", _PREFIX + session_id)
        elif self._url is not None:
            await self._client().delete(_PREFIX + session_id)
        if self._file is not None:
            self._file.drop(session_id)
        self._local.pop(session_id, None)

    async def get(self, session_id: str) -> McpSession | None:
        try:
            return await self._get(session_id)
        except Exception as exc:
            if _out_of_reach(exc):
                raise SessionsUnavailable(type(exc).__name__) from None
            raise

    async def put(self, session: McpSession) -> None:
        try:
            await self._put(session)
        except Exception as exc:
            if _out_of_reach(exc):
                raise SessionsUnavailable(type(exc).__name__) from None
            raise

    async def drop(self, session_id: str) -> None:
        try:
            await self._drop(session_id)
        except Exception as exc:
            if _out_of_reach(exc):
                raise SessionsUnavailable(type(exc).__name__) from None
            raise

    async def close(self) -> None:
        if self._lean is not None:
            await self._lean.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._redis is not None:
            await self._redis.close()
            self._redis = None
