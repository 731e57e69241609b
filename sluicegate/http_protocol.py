"""uvicorn's httptools protocol with a deadline and a size cap on the request head.

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

Nor does anything bound its size: httptools gathers a header's value (and
uvicorn the URL) piece by piece until it ends, so a header that never ends
grows without limit. Here a head may hold ``gateway.max_header_bytes`` bytes
(request line and headers) and ``gateway.max_headers`` fields; past either the
client gets a 431 and the connection closes. While a head is being read the
parser is fed at most the bytes the head may still take, so the excess is
never read into the parser, let alone kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sluicegate.errors import GatewayError, HeadTooLarge, RequestTimeout

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_HEAD_LIMITS = (64 * 1024, 100)  # gateway.max_header_bytes, gateway.max_headers


class _Refused(Exception):
    """Raised in a parser callback to stop the parser where a head went over a limit."""


def _closing_answer(status: bytes, error: GatewayError) -> bytes:
    body = error.body("openai")
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


def _answer_408() -> bytes:
    error = RequestTimeout("the request's headers did not arrive within gateway.header_timeout")
    return _closing_answer(b"408 Request Timeout", error)


class HeadTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request has begun and its headers are not complete
        # The app (sluicegate.app.App) reads the settings from the current config, so a
        # reload applies; uvicorn may have wrapped it in middleware of its own.
        self._config_app = self.app
        while self._config_app is not None and not hasattr(self._config_app, "header_timeout"):
            self._config_app = getattr(self._config_app, "app", None)
        limits: tuple[int, int] = (
            DEFAULT_HEAD_LIMITS if self._config_app is None else self._config_app.head_limits
        )
        self._max_bytes, self._max_fields = limits
        self._in_body = False  # a request's headers are complete and its body is not
        self._messages = 0  # requests read whole on this connection
        # The current head's size: the bytes fed to the parser since it (or the gap before
        # it) began, and what the parser has reported of it (its URL and whole fields).
        self._head_bytes = 0
        self._head_seen = 0
        self._fields = 0
        self._refusal: HeadTooLarge | None = None  # set: no more is read; a 431 is due

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

    def _answering(self) -> bool:
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

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

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._refusal is not None:
            return  # what a refused client still sends is dropped as it comes
        rest: bytes | memoryview = data
        while rest:
            in_head = not self._in_body
            if in_head:
                room = self._max_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(self._too_many_bytes())
                    return
                if len(rest) > room:
                    rest = memoryview(rest)
                piece, rest = rest[:room], rest[room:]
            else:
                piece, rest = rest, b""
            messages = self._messages
            if not self._feed(piece):
                return
            if self._messages != messages:  # a request ended in the piece, another may begin
                self._head_bytes = self._head_seen
            elif in_head:
                self._head_bytes += len(piece)

    def _feed(self, piece: bytes | memoryview) -> bool:
        """One piece to the parser, handled as uvicorn's own ``data_received`` handles its
        data, but for a head over a limit; False: nothing more is to be read."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self._refusal is not None:  # one of the callbacks below stopped the parser
                self._refuse(self._refusal)
                return False
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    def _refuse(self, error: HeadTooLarge) -> None:
        """Read nothing more; answer 431 and close, once the answers before it are sent."""
        self._refusal = error
        self._disarm()
        if self.transport.is_closing():
            return
        if self._answering():
            self.flow.pause_reading()
            return
        self.transport.write(_closing_answer(b"431 Request Header Fields Too Large", error))
        self.transport.close()

    def _too_many_bytes(self) -> HeadTooLarge:
        return HeadTooLarge(
            f"The request's line and headers are over {self._max_bytes} bytes "
            "(gateway.max_header_bytes)."
        )

    def _grow(self, size: int) -> None:
        self._head_seen += size
        if self._head_seen > self._max_bytes:
            self._refusal = self._too_many_bytes()
            raise _Refused

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        # A later request on a kept-alive connection: from its first byte, also when it
        # comes pipelined behind one still being answered (uvicorn goes on reading until
        # its head is complete).
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self._max_fields:
            self._refusal = HeadTooLarge(
                f"The request has more than {self._max_fields} header fields (gateway.max_headers)."
            )
            raise _Refused
        self._grow(len(name) + len(value) + 3)  # at least "name:value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._messages += 1
        self._head_bytes = self._head_seen = self._fields = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self._answering():
            self._refuse(self._refusal)

    def shutdown(self) -> None:
        # The server is stopping: the streams still running get the drain time to end.
        if self._config_app is not None:
            self._config_app.begin_drain()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
