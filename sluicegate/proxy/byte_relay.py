"""An answer relayed to the client as the provider sends it, byte for byte (native
pass-through, audio and events of the media endpoints).

It runs until the answer ends, the client leaves, the service's ``stream_timeout`` passes
or the server's drain time at shutdown ends (sluicegate/drain.py). Its head is out by
then, so an end other than the answer's own cuts the connection without a last chunk: the
client sees a cut answer, never a whole one. ``ex.error_type`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from sluicegate.asgi import Headers, Receive, Send
from sluicegate.errors import TransportError
from sluicegate.proxy.upstream import UpstreamResponse
from sluicegate.telemetry.exchange import Exchange


async def relay_bytes(
    response: UpstreamResponse,
    send: Send,
    headers: Headers,
    receive: Receive,
    ex: Exchange,
    longest: float,
    drain: asyncio.Future[None] | None = None,
    tap: Callable[[bytes], None] | None = None,
) -> None:
    """``tap`` reads each chunk on its way (usage in a stream), never changing it."""
    await send({"type": "http.response.start", "status": response.status, "headers": headers})

    async def pump() -> None:
        async for chunk in response.chunks():
            if ex.first_token is None:
                ex.first_token = time.perf_counter() - ex.started
            if tap is not None:
                tap(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    relaying = asyncio.ensure_future(pump())
    leaving = asyncio.ensure_future(left(receive))
    waits: set[asyncio.Future[None]] = {relaying, leaving}
    if drain is not None:
        waits.add(drain)
    started = time.monotonic()
    try:
        done, _ = await asyncio.wait(waits, timeout=longest, return_when=asyncio.FIRST_COMPLETED)
        if relaying in done:
            try:
                relaying.result()
            except TransportError:
                ex.error_type = "upstream_error"
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif leaving in done:
            ex.error_type = "client_closed"
        elif drain is not None and drain in done:
            ex.error_type = "shutting_down"
        else:
            ex.error_type = "timeout_error"
    finally:
        for task in (relaying, leaving):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await relaying
        response.release()
        ex.upstream_seconds += time.monotonic() - started


async def left(receive: Receive) -> None:
    """Returns once the client has gone away (read after its body is done)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
