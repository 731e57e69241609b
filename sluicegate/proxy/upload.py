"""A client's request body streamed on as it arrives, under ``read_body``'s limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from sluicegate.asgi import Receive
from sluicegate.errors import GatewayError, InvalidRequest, RequestTimeout, RequestTooLarge


class Upload:
    """The client's body part by part as it arrives, under ``read_body``'s limits. The HTTP
    client reads it while sending and sees any failure as its own; ``error`` keeps the
    client's fault (too large, too slow, gone) so that it is answered as such."""

    def __init__(self, receive: Receive, limit: int, declared: int | None, timeout: float):
        if declared is not None and declared > limit:
            raise RequestTooLarge(
                f"The request body is {declared} bytes; the limit is {limit} bytes."
            )
        self.receive, self.limit, self.timeout = receive, limit, timeout
        self.error: GatewayError | None = None
        # Sees each part before it goes on, and may refuse it (a GatewayError): the
        # client's fault, kept in ``error`` like the others.
        self.check: Callable[[bytes], None] | None = None

    async def parts(self) -> AsyncGenerator[bytes, None]:
        try:
            async for chunk in self._parts():
                yield chunk
        except GatewayError as exc:
            self.error = exc
            raise

    async def _parts(self) -> AsyncGenerator[bytes, None]:
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    message = await self.receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"The client sent no part of its body for {self.timeout:g} seconds."
                ) from None
            if message["type"] == "http.disconnect":
                raise InvalidRequest("The client went away while sending the body.")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise RequestTooLarge(f"The request body is over the limit of {self.limit} bytes.")
            if chunk:
                if self.check is not None:
                    self.check(chunk)
                yield chunk
            if not message.get("more_body"):
                return
