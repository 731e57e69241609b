"""A lean Redis client for the rate limiter's two scripts on one plain Redis server.

Each request through a Redis-backed limit makes two script calls. Through
redis-py's asyncio client each call checks a connection out of the pool and
probes it with a read, wraps the command in its retry and deprecation layers,
and parses the answer in Python, which profiled at about a third of the
request's CPU time (docs/performance.md). Here every call is written at once
to one connection and the answers, which Redis sends in order, resolve the
waiting calls first in, first out: no checkout, no probe, and concurrent
requests share round trips.

Only ``redis://`` URLs without query options use it (``RedisCounters``); TLS,
sockets, Sentinel and Cluster keep redis-py. Failures raise ``RedisCallFailed``;
the limiter treats any exception as "counters out of reach" (``redis_failure``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import cast
from urllib.parse import unquote, urlsplit

from sluicegate.errors import RedisCallFailed

# An error reply is returned as an exception and raised by the call it answers.
Answer = int | bytes | str | list["Answer"] | RedisCallFailed | None


class _NoScript(RedisCallFailed):
    """The script's digest is unknown to this server (restarted, or SCRIPT FLUSH)."""


def lean_target(url: str) -> tuple[str, int, int, str | None, str | None] | None:
    """(host, port, db, username, password) when ``url`` is one a ``Resp`` serves."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or parts.query or "," in parts.netloc:
        return None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", parts.port or 6379, int(db or 0), user, password


def _pack(args: Sequence[bytes | str | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _parse(buf: bytearray, pos: int) -> tuple[Answer, int] | None:
    """One answer from ``buf`` at ``pos`` and where it ends; None when incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 43:  # '+'
        return line.decode(), pos
    if kind == 45:  # '-'
        text = line.decode(errors="replace")
        return (_NoScript(text) if text.startswith("NOSCRIPT") else RedisCallFailed(text)), pos
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            return None
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 42:  # '*'
        count = int(line)
        items: list[Answer] = []
        for _ in range(max(count, 0)):
            got = _parse(buf, pos)
            if got is None:
                return None
            item, pos = got
            items.append(item)
        return (items if count >= 0 else None), pos
    raise RedisCallFailed(f"unexpected reply type {chr(kind)!r} from Redis")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Answer]] = deque()
        self.buf = bytearray()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        while self.waiting:
            try:
                got = _parse(self.buf, pos)
            except (RedisCallFailed, ValueError) as exc:
                self.fail(RedisCallFailed(f"unreadable answer from Redis ({exc})"))
                return
            if got is None:
                break
            answer, pos = got
            fut = self.waiting.popleft()
            if not fut.done():
                if isinstance(answer, RedisCallFailed):
                    fut.set_exception(answer)
                else:
                    fut.set_result(answer)
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisCallFailed(f"the connection to Redis closed ({exc or 'by the server'})"))

    def fail(self, exc: Exception) -> None:
        self.lost = exc
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Resp:
    """One pipelined connection to one Redis server, opened on first use and
    reopened after a failure. ``timeout`` bounds each call (and the connect)."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        target = lean_target(url)
        if target is None:
            raise ValueError("Resp serves plain redis:// URLs only")
        self._host, self._port, self._db, self._user, self._password = target
        self._timeout = timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and self._proto.lost is None:
                return self._proto
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    _, proto = await loop.create_connection(_Protocol, self._host, self._port)
            except (OSError, TimeoutError) as exc:
                raise RedisCallFailed(f"cannot connect to Redis ({type(exc).__name__})") from None
            self._proto = proto
            hello: list[list[bytes | str | int]] = []
            if self._password is not None:
                hello.append(["AUTH", *([self._user] if self._user else []), self._password])
            if self._db:
                hello.append(["SELECT", self._db])
            try:
                for command in hello:
                    await self.call(*command)
            except RedisCallFailed as exc:
                proto.fail(exc)  # never use a connection that is not logged in
                raise
            return proto

    async def call(self, *args: bytes | str | int) -> Answer:
        proto = await self._connection()
        assert proto.transport is not None
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        proto.waiting.append(fut)
        proto.transport.write(_pack(args))
        try:
            async with asyncio.timeout(self._timeout):
                return await fut
        except TimeoutError:
            # The answers that follow would pair with the wrong calls: start afresh.
            proto.fail(RedisCallFailed("Redis did not answer in time"))
            raise RedisCallFailed("Redis did not answer in time") from None

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class Script:
    """A Lua script run by its digest; sent whole once when Redis does not know it."""

    def __init__(self, client: Resp, source: str) -> None:
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[int]) -> Answer:
        try:
            return await self._client.call("EVALSHA", self._sha, len(keys), *keys, *args)
        except _NoScript:
            return await self._client.call("EVAL", self._source, len(keys), *keys, *args)
