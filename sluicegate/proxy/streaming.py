"""Relaying a stream: each whole event goes to the client as soon as it arrives.

When the client and the provider speak the same dialect, events are cut at
their boundaries and passed on as bytes (never half an event). Otherwise the
provider's decoder turns its stream into canonical chunks and the client's
dialect encodes them. Either way, when the upstream breaks off the client gets
a well-formed error event instead of a silent end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from sluicegate.asgi import Headers, Send
from sluicegate.errors import GatewayError, TransportError, UpstreamError, UpstreamTimeout
from sluicegate.schema.sse import EventSplitter
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.usage import TokenCounts, read_usage, usage_of_events

if TYPE_CHECKING:
    from sluicegate.dialects.base import Dialect, StreamEncoder
    from sluicegate.providers.base import StreamDecoder
    from sluicegate.proxy.upstream import UpstreamResponse

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class Relay(Protocol):
    finished: bool
    usage: TokenCounts | None
    pending: GatewayError | None  # an error the provider reported; sent after what came before

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class Passthrough:
    """The provider speaks the client's dialect: whole events out, bytes untouched."""

    def __init__(self, dialect: Dialect) -> None:
        self.finished = False
        self.pending: GatewayError | None = None
        self.usage: TokenCounts | None = None
        self._dialect = dialect
        self._splitter = EventSplitter()

    def feed(self, data: bytes) -> bytes:
        events = self._splitter.feed(data)
        if not events:
            return b""
        self.finished = self._dialect.stream_done(events[-1])
        payload = events[0] if len(events) == 1 else b"".join(events)
        self.usage = usage_of_events(payload, self.usage)
        return payload

    def close(self) -> bytes:
        return b""

    def error(self, error: GatewayError) -> bytes:
        return self._dialect.error_event(error)


class Translated:
    """The provider's stream decoded into canonical chunks, encoded in the client's dialect."""

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.finished = False
        self.pending: GatewayError | None = None
        self.usage: TokenCounts | None = None

    def feed(self, data: bytes) -> bytes:
        chunks = self.decoder.feed(data)
        for chunk in chunks:
            if chunk.get("usage"):
                self.usage = read_usage(chunk["usage"], self.usage)
        out = self.encoder.encode(chunks) if chunks else b""
        self.pending = self.decoder.error
        if self.decoder.finished and not self.finished:
            self.finished = True
            out += self.encoder.close()
        return out

    def close(self) -> bytes:
        return b""

    def error(self, error: GatewayError) -> bytes:
        return self.encoder.error(error)


async def relay_stream(
    first: bytes,
    rest: AsyncIterator[bytes],
    response: UpstreamResponse,
    send: Send,
    out: Headers,
    relay: Relay,
    ex: Exchange,
) -> None:
    """Send the stream whose ``first`` chunk has arrived, then the ``rest``."""
    out.extend(_STREAM_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": out})
    error: GatewayError | None = None
    try:
        payload = relay.feed(first)
        if payload:
            await send({"type": "http.response.body", "body": payload, "more_body": True})
        ex.first_token = time.perf_counter() - ex.started
        if relay.pending is not None:
            raise relay.pending
        async for data in rest:
            payload = relay.feed(data)
            if payload:
                await send({"type": "http.response.body", "body": payload, "more_body": True})
            if relay.pending is not None:
                raise relay.pending
    except TransportError as exc:
        error = UpstreamTimeout(str(exc)) if exc.kind == "timeout" else UpstreamError(str(exc))
    except GatewayError as exc:  # the provider reported an error inside its stream
        error = exc
    except ValueError as exc:  # an event that is not what the provider documents
        error = UpstreamError(f"the upstream sent an unreadable stream event ({exc})")
    finally:
        response.release()
    if error is None and not relay.finished:
        error = UpstreamError("the upstream ended its stream before it was complete")
    tail = relay.error(error) if error is not None else relay.close()
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    ex.ended = time.perf_counter()
    ex.usage = relay.usage
    if error is not None:
        ex.error_type = error.type
