"""Relaying a stream: each whole event goes to the client as soon as it arrives.

An OpenAI-format stream is cut at event boundaries and passed on as bytes
(never half an event). Any other provider's stream goes through its adapter's
decoder and comes out as OpenAI chunks. Either way, when the upstream breaks
off the client gets a well-formed error event instead of a silent end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sluicegate.asgi import Headers, Send
from sluicegate.errors import GatewayError, TransportError, UpstreamError, UpstreamTimeout
from sluicegate.schema.sse import DONE, EventSplitter, encode_data

if TYPE_CHECKING:
    from sluicegate.providers.base import StreamDecoder
    from sluicegate.proxy.upstream import UpstreamResponse

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _Passthrough:
    """OpenAI's own stream: whole events out, bytes untouched."""

    def __init__(self) -> None:
        self.finished = False
        self._splitter = EventSplitter()

    def feed(self, data: bytes) -> bytes:
        events = self._splitter.feed(data)
        if not events:
            return b""
        self.finished = events[-1] == DONE
        return events[0] if len(events) == 1 else b"".join(events)


class _Translated:
    """Another provider's stream, decoded into OpenAI chunks."""

    def __init__(self, decoder: StreamDecoder, include_usage: bool) -> None:
        self.decoder = decoder
        self.include_usage = include_usage

    @property
    def finished(self) -> bool:
        return self.decoder.finished

    def feed(self, data: bytes) -> bytes:
        chunks: list[dict[str, Any]] = self.decoder.feed(data)
        if not self.include_usage:
            chunks = [c for c in chunks if c.get("choices")]
        out = b"".join(encode_data(c) for c in chunks)
        if self.decoder.finished:
            out += DONE
        return out


async def relay_stream(
    response: UpstreamResponse,
    send: Send,
    out: Headers,
    decoder: StreamDecoder | None = None,
    include_usage: bool = False,
) -> None:
    relay = _Passthrough() if decoder is None else _Translated(decoder, include_usage)
    out.extend(_STREAM_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": out})
    error: GatewayError | None = None
    try:
        async for data in response.chunks():
            payload = relay.feed(data)
            if payload:
                await send({"type": "http.response.body", "body": payload, "more_body": True})
    except TransportError as exc:
        error = UpstreamTimeout(str(exc)) if exc.kind == "timeout" else UpstreamError(str(exc))
    except GatewayError as exc:  # the provider reported an error inside its stream
        error = exc
    except ValueError as exc:  # an event that is not what the provider documents
        error = UpstreamError(
            f"the upstream sent an unreadable stream event ({type(exc).__name__})"
        )
    finally:
        response.release()
    if error is None and not relay.finished:
        error = UpstreamError("the upstream ended its stream before it was complete")
    tail = encode_data(error.openai_body()) if error is not None else b""
    await send({"type": "http.response.body", "body": tail, "more_body": False})
