"""Relaying a stream: each whole event goes to the client as soon as it arrives.

Events are cut at their boundaries (never half an event), so when the
upstream breaks off the client gets a well-formed error event instead of a
truncated line or a silent end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluicegate.asgi import Headers, Send
from sluicegate.errors import GatewayError, TransportError, UpstreamError, UpstreamTimeout
from sluicegate.schema.sse import DONE, EventSplitter, encode_data

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import UpstreamResponse

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def relay_stream(response: UpstreamResponse, send: Send, out: Headers) -> None:
    out.extend(_STREAM_HEADERS)
    await send({"type": "http.response.start", "status": 200, "headers": out})
    splitter = EventSplitter()
    finished = False
    error: GatewayError | None = None
    try:
        async for data in response.chunks():
            events = splitter.feed(data)
            if not events:
                continue
            finished = events[-1] == DONE
            payload = events[0] if len(events) == 1 else b"".join(events)
            await send({"type": "http.response.body", "body": payload, "more_body": True})
    except TransportError as exc:
        error = UpstreamTimeout(str(exc)) if exc.kind == "timeout" else UpstreamError(str(exc))
    finally:
        response.release()
    if error is None and not finished:
        error = UpstreamError("the upstream ended its stream before it was complete")
    tail = encode_data(error.openai_body()) if error is not None else b""
    await send({"type": "http.response.body", "body": tail, "more_body": False})
