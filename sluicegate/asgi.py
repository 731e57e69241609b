"""The few ASGI helpers the data plane needs, without a framework on the hot path."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sluicegate.errors import GatewayError, InvalidRequest, RequestTimeout, RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")
# On every data-plane answer: a content type relayed from an upstream (text/html, say) is
# never second-guessed by a browser into something it would run.
NOSNIFF = (b"x-content-type-options", b"nosniff")


async def read_body(
    receive: Receive, limit: int, declared: int | None, timeout: float | None = None
) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes without reading them all,
    and a client that pauses longer than ``timeout`` seconds between two parts of it."""
    if declared is not None and declared > limit:
        raise RequestTooLarge(f"The request body is {declared} bytes; the limit is {limit} bytes.")
    message = await _next_part(receive, timeout)
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await _next_part(receive, timeout)
        if message["type"] == "http.disconnect":
            raise InvalidRequest("The client went away while sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


def bounded_receive(
    receive: Receive, limit: int, declared: int | None, timeout: float | None
) -> Receive:
    """``receive`` for an app that reads the body itself (the Admin API, the dashboard),
    under ``read_body``'s rules: a declared length over ``limit`` is refused before a byte
    is read, the body is cut off once it passes ``limit``, and a pause longer than
    ``timeout`` while it comes is a ``RequestTimeout``. After the body, messages (the
    client going away) pass as they come."""
    size = 0
    done = False

    async def bounded() -> Message:
        nonlocal size, done
        if done:
            return await receive()
        if declared is not None and declared > limit:
            raise RequestTooLarge(
                f"The request body is {declared} bytes; the limit is {limit} bytes."
            )
        message = await _next_part(receive, timeout)
        if message["type"] != "http.request":
            raise InvalidRequest("The client went away while sending the body.")
        size += len(message.get("body", b""))
        if size > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        done = not message.get("more_body")
        return message

    return bounded


async def _next_part(receive: Receive, timeout: float | None) -> Message:
    if timeout is None:
        return await receive()
    try:
        async with asyncio.timeout(timeout):
            return await receive()
    except TimeoutError:
        raise RequestTimeout(
            f"The client sent no part of its body for {timeout:g} seconds."
        ) from None


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(
    send: Send, error: GatewayError, headers: Headers, dialect: str = "openai"
) -> None:
    headers.append(JSON)
    for name, value in error.headers.items():
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    await respond(send, error.http_status, error.body(dialect), headers)
