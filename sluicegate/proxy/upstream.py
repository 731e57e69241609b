"""Sending an ``UpstreamRequest``: the pooled HTTP client and the in-process mock.

One ``aiohttp.ClientSession`` serves every target; its connector keeps a
keep-alive pool per (host, port, TLS) so each target reuses its connections.
aiohttp was chosen over httpx by measurement (docs/performance.md): on this
path it costs about a third of the CPU per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from yarl import URL

from sluicegate.errors import AnswerTooLarge
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.transport_errors import classify


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``total`` bounds a whole non-streaming exchange; ``first_byte`` bounds the
    wait for the first byte of an answer (for a stream, its first chunk: the
    "time to first token"); ``read`` bounds each gap between a stream's chunks,
    and ``stream`` a whole stream, from its first chunk to its end."""

    connect: float
    read: float
    total: float
    first_byte: float | None = None  # None: the total timeout
    stream: float = 1800.0

    @property
    def first_byte_limit(self) -> float:
        return min(self.first_byte or self.total, self.total)


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; raises ``AnswerTooLarge`` past ``limit`` bytes."""

    def chunks(self) -> AsyncGenerator[bytes, None]: ...

    def release(self) -> None: ...


class NativeResponse(UpstreamResponse, Protocol):
    """An answer read as the provider sent it: its header lines as they came (``set-cookie``
    repeated), its body not decompressed."""

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...


class Transport(Protocol):
    async def open(
        self, request: UpstreamRequest, timeouts: Timeouts, tls: ssl.SSLContext | None = None
    ) -> UpstreamResponse:
        """``tls``: the service's own SSL context (``sluicegate.tls.client``); None: the
        default, which verifies against the system's CAs."""


class _AiohttpResponse:
    __slots__ = ("_deadline", "_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, deadline: float) -> None:
        self._resp = resp
        self._deadline = deadline
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self, limit: int | None = None) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                declared = self._resp.content_length
                if limit is None or (declared is not None and declared <= limit):
                    return await self._resp.read()  # its length is known and allowed
                if declared is not None:
                    raise AnswerTooLarge(f"the answer is {declared} bytes, above {limit} bytes")
                # Chunked: counted as it arrives, and never held past the limit.
                parts: list[bytes] = []
                size = 0
                async for data in self._resp.content.iter_any():
                    size += len(data)
                    if size > limit:
                        raise AnswerTooLarge(f"the answer is above {limit} bytes")
                    parts.append(data)
                return b"".join(parts)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise classify(exc, "read") from None
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            async for data in self._resp.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise classify(exc, "stream") from None
        finally:
            self._resp.release()

    def release(self) -> None:
        self._resp.release()

    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]:
        return self._resp.raw_headers


class HttpTransport:
    """The real HTTP client; create it inside the running event loop."""

    def __init__(self, *, pool_size: int = 1000, keepalive: float = 60.0) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=pool_size,
                limit_per_host=0,
                keepalive_timeout=keepalive,
                ttl_dns_cache=300,
                enable_cleanup_closed=True,
            ),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def open(
        self, request: UpstreamRequest, timeouts: Timeouts, tls: ssl.SSLContext | None = None
    ) -> UpstreamResponse:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        try:
            async with asyncio.timeout(timeouts.first_byte_limit):
                resp = await self._session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    params=request.params or None,
                    timeout=timeout,
                    allow_redirects=False,
                    ssl=True if tls is None else tls,  # a context per service, made at compile
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise classify(exc, "open") from None
        return _AiohttpResponse(resp, deadline)

    async def open_native(
        self,
        request: UpstreamRequest,
        headers: Sequence[tuple[str, str]],
        body: bytes | AsyncIterable[bytes],
        timeouts: Timeouts,
        tls: ssl.SSLContext | None = None,
    ) -> NativeResponse:
        """``request`` (``/passthrough``) sent with ``headers`` as given, repeats kept, and
        ``body`` streamed as it is read; the answer is left compressed if it was. The
        service's total timeout bounds the upload and the wait for the answer's head."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
        )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.total):
                resp = await self._session.request(
                    request.method,
                    URL(request.url, encoded=True),  # the client's path and query, as it sent them
                    data=body,
                    headers=list(headers),
                    params=request.params or None,
                    timeout=timeout,
                    allow_redirects=False,
                    auto_decompress=False,
                    # Nothing of the client's request is made up: no Accept-Encoding it did
                    # not send (its answer would come compressed), no Content-Type.
                    skip_auto_headers=("Accept", "Accept-Encoding", "Content-Type", "User-Agent"),
                    ssl=True if tls is None else tls,
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise classify(exc, "open") from None
        return _AiohttpResponse(resp, loop.time() + timeouts.stream)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._session.close()
