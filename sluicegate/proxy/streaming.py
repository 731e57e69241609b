"""Relaying a stream: each whole event goes to the client as soon as it arrives.

When the client and the provider speak the same dialect, events are cut at
their boundaries and passed on as bytes (never half an event); the adapter's
``passthrough_edits`` may change a few of them (an OpenAI client gets no usage
it did not ask for; providers/openai_stream.py). Otherwise the
provider's decoder turns its stream into canonical chunks and the client's
dialect encodes them. Either way, when the upstream breaks off the client gets
a well-formed error event instead of a silent end.

Each relay also measures the generated text it passes on (``text``), from what
it already reads: the events' bytes when passing through, the decoded chunks
when translating. When the provider reports no usage, the request is settled
and recorded with tokens counted from it, marked as counted (docs/limits.md).

A client that goes away mid-stream stops the relay: the upstream connection is
closed, and the request is recorded with status 499 and what was counted so far.

The gateway also ends a stream itself: one still running at its service's
``stream_timeout`` (504, code ``stream_timeout``), or when the server's drain
time ends at shutdown (503, code ``shutting_down``; sluicegate/drain.py). The
upstream connection is closed, the client gets the dialect's error event, and
the request is recorded with that status and the code as its ``error_type``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from sluicegate.asgi import Headers, Receive, Send
from sluicegate.errors import (
    GatewayError,
    ShuttingDown,
    StreamTimeout,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)
from sluicegate.schema.sse import EventSplitter
from sluicegate.telemetry import events
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.usage import (
    TokenCounts,
    read_usage,
    text_markers,
    text_size,
    text_size_of_chunk,
    usage_of_events,
)

if TYPE_CHECKING:
    from sluicegate.dialects.base import Dialect, StreamEncoder
    from sluicegate.guardrails.stream import ChunkGuard
    from sluicegate.providers.base import EventEdits, StreamDecoder
    from sluicegate.proxy.upstream import UpstreamResponse

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

STREAM_HEADERS = _STREAM_HEADERS  # a cached answer replayed as a stream goes out with them too

# What a request whose client went away is recorded with (nginx's convention).
CLIENT_CLOSED = 499


class Relay(Protocol):
    finished: bool
    usage: TokenCounts | None
    text: int  # size of the generated text relayed so far, for when usage is missing
    pending: GatewayError | None  # an error the provider reported; sent after what came before

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class Passthrough:
    """The provider speaks the client's dialect: whole events out, bytes untouched but for
    the provider's ``edits`` (usage the client did not ask for, a server's quirks)."""

    def __init__(self, dialect: Dialect, edits: EventEdits | None = None) -> None:
        self.finished = False
        self.pending: GatewayError | None = None
        self.usage: TokenCounts | None = None
        self.text = 0
        self._dialect = dialect
        self._edits = edits
        self._splitter = EventSplitter()
        self._markers: tuple[bytes, ...] | None = None  # chosen on the first event

    def feed(self, data: bytes) -> bytes:
        payload, last = self._splitter.feed_joined(data)
        if not payload:
            return b""
        self.finished = self._dialect.stream_done(last)
        self.usage = usage_of_events(payload, self.usage)  # before edits take any away
        if self._edits is not None:
            payload = self._edits.feed(payload)
            if not payload:
                return b""
        if self._markers is None:
            self._markers = text_markers(self._dialect.name, payload)
        self.text += text_size(payload, self._markers)
        return payload

    def close(self) -> bytes:
        return b""

    def error(self, error: GatewayError) -> bytes:
        return self._dialect.error_event(error)


class Translated:
    """The provider's stream decoded into canonical chunks, encoded in the client's dialect."""

    def __init__(
        self, decoder: StreamDecoder, encoder: StreamEncoder, guard: ChunkGuard | None = None
    ) -> None:
        self.decoder = decoder
        self.encoder = encoder
        self.guard = guard  # output guardrails, between the decoder and the encoder
        self.finished = False
        self.pending: GatewayError | None = None
        self.usage: TokenCounts | None = None
        self.text = 0

    def feed(self, data: bytes) -> bytes:
        chunks = self.decoder.feed(data)
        if self.guard is not None:
            chunks = self.guard.feed(chunks)
            if self.decoder.finished:
                chunks += self.guard.close()  # what was held back, before the end
            if self.guard.blocked is not None:  # the stream ends with the error, nothing more
                self.pending = self.guard.blocked
                return b""
        for chunk in chunks:
            if chunk.get("usage"):
                self.usage = read_usage(chunk["usage"], self.usage)
            self.text += text_size_of_chunk(chunk)
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


async def _until_disconnect(receive: Receive) -> None:
    # The body has been read, so the next message is the client leaving.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pump(
    first: bytes, rest: AsyncIterator[bytes], send: Send, relay: Relay, ex: Exchange
) -> GatewayError | None:
    """Relay every event; the error that ended the stream early, if any."""
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
    except TransportError as exc:  # its text is a fixed phrase (proxy/transport_errors.py)
        text = f"service '{ex.service}': {exc}"
        return UpstreamTimeout(text) if exc.kind == "timeout" else UpstreamError(text)
    except GatewayError as exc:  # the provider reported an error inside its stream
        return exc
    except ValueError as exc:  # an event that is not what the provider documents
        return UpstreamError(f"service '{ex.service}' sent an unreadable stream event ({exc})")
    return None


async def relay_stream(
    first: bytes,
    rest: AsyncIterator[bytes],
    response: UpstreamResponse,
    send: Send,
    out: Headers,
    relay: Relay,
    ex: Exchange,
    receive: Receive | None = None,
    *,
    limit: float | None = None,
    drain: asyncio.Future[None] | None = None,
) -> None:
    """Send the stream whose ``first`` chunk has arrived, then the ``rest``.

    It ends early when the client leaves (``receive``), when it has run for ``limit``
    seconds, or when ``drain`` is done. The relay and the client's watch are two tasks
    per stream, nothing per event."""
    out.extend(_STREAM_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": out})
    pump = asyncio.create_task(_pump(first, rest, send, relay, ex))
    waits: list[asyncio.Future[Any]] = [pump]
    watch = None
    if receive is not None:
        watch = asyncio.create_task(_until_disconnect(receive))
        waits.append(watch)
    if drain is not None:
        waits.append(drain)
    try:
        try:
            await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            relayed = pump.done()
            if watch is not None:
                watch.cancel()
            if not relayed:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                if isinstance(rest, AsyncGenerator):
                    await rest.aclose()
    except asyncio.CancelledError:
        # Cancelled from outside: uvicorn past its graceful-shutdown time (the drain's error
        # event could not be sent in time). Recorded as cut all the same.
        ex.status, ex.error_type = ShuttingDown.status, ShuttingDown.default_code
        raise
    finally:
        response.release()  # mid-stream, this closes the upstream connection
    ex.usage = relay.usage
    ex.text_size = relay.text
    error: GatewayError | None = None
    if relayed:
        error = pump.result()
    elif watch is not None and watch.done() and not watch.cancelled():
        ex.ended = time.perf_counter()
        ex.status, ex.error_type = CLIENT_CLOSED, "client_disconnected"
        return
    elif drain is not None and drain.done():
        error = ShuttingDown("The gateway is shutting down; the stream was ended.")
    else:
        error = StreamTimeout(
            f"The stream ran longer than the service's stream_timeout ({limit:g} s)."
        )
    if error is None and not relay.finished:
        error = UpstreamError("the upstream ended its stream before it was complete")
    tail = relay.error(error) if error is not None else relay.close()
    await send({"type": "http.response.body", "body": tail, "more_body": False})
    ex.ended = time.perf_counter()
    if isinstance(error, (ShuttingDown, StreamTimeout)):  # ended by the gateway itself
        ex.status, ex.error_type = error.http_status, error.code
    elif error is not None:  # the upstream's failure: the client has its 200 and the event
        ex.error_type = error.client_type
    if error is not None:
        events.stream_cut(ex.request_id, ex.service, error.message)
