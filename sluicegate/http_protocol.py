"""uvicorn's httptools protocol with a deadline on the request head.

uvicorn times out idle kept-alive connections and our proxy times out stalled
bodies (``gateway.body_timeout``), but nothing bounds the head: a client that
connects and sends nothing, or trickles its request line and headers a byte
at a time (slowloris), would hold its connection for ever. Here the head must
be complete within ``gateway.header_timeout``, counted from the connection
(its first request) or from the first byte of a request (the next ones on a
kept-alive connection); past that the connection is closed, with a 408 in the
gateway's error shape when part of a request had come (a connection that never
sent a byte is closed silently, as uvicorn closes an idle kept-alive one: a
client that opened it ahead of time must not read a 408 as the answer to the
request it is about to send).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluicegate.errors import RequestTimeout

DEFAULT_HEADER_TIMEOUT = 10.0


def _answer_408() -> bytes:
    body = RequestTimeout(
        "the request's headers did not arrive within gateway.header_timeout"
    ).body("openai")
    head = (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/json\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class HeadTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request has begun and its headers are not complete
        # The app (sluicegate.app.App) reads the deadline from the current config, so a
        # reload applies; uvicorn may have wrapped it in middleware of its own.
        self._config_app = self.app
        while self._config_app is not None and not hasattr(self._config_app, "header_timeout"):
            self._config_app = getattr(self._config_app, "app", None)

    def _seconds(self) -> float:
        if self._config_app is None:
            return DEFAULT_HEADER_TIMEOUT
        return float(self._config_app.header_timeout)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._seconds(), self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._in_head and not answering:  # never into the middle of another answer
            self.transport.write(_answer_408())
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        # A later request on a kept-alive connection: from its first byte, also when it
        # comes pipelined behind one still being answered (uvicorn goes on reading until
        # its head is complete).
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
