"""The client's side of one ``POST /v1/responses``: what it is sent, and when the response
is kept.

A translated answer goes out as the dialect wrote it (or as guardrails(out) rewrote it);
OpenAI's own answer is edited on its way (``native``). Either way the final response is
kept before the client is sent it complete: before the whole body, or before the message
that carries the stream's ``response.completed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from sluicegate.asgi import Message, Send
from sluicegate.dialects.responses import ResponsesDialect
from sluicegate.proxy.streaming import STREAM_HEADERS
from sluicegate.responses.native import NativeAnswer

STREAM_TYPE = dict(STREAM_HEADERS)[b"content-type"]


class Outgoing:
    def __init__(
        self, send: Send, dialect: ResponsesDialect, keep: Callable[[], Awaitable[None]]
    ) -> None:
        self._send = send
        self.dialect = dialect
        self.native = NativeAnswer(dialect)
        self._keep = keep
        self.keeps = True  # unless the request says store: false
        self.owner = ""  # the caller's consumer, once known
        self._held: Message | None = None  # a native whole answer's start, until its body
        self._mode = ""  # of a 200 answer: "whole" or "stream"

    async def __call__(self, message: Message) -> None:
        dialect = self.dialect
        if message["type"] == "http.response.start":
            self._mode = ""
            if message["status"] == 200:
                streamed = (b"content-type", STREAM_TYPE) in message.get("headers", [])
                self._mode = "stream" if streamed else "whole"
                if self._mode == "whole" and not dialect.translated:
                    self._held = message  # its content-length changes with the body
                    return
            await self._send(message)
            return
        if message["type"] == "http.response.body" and self._mode:
            body = message.get("body", b"")
            if self._mode == "stream" and not dialect.translated:
                message["body"] = self.native.events(body)
            elif self._mode == "whole" and not dialect.translated:
                message["body"] = self.native.whole(body)
                await self._kept()
                await self._send(self._resized(len(message["body"])))
            elif self._mode == "whole" and body != dialect.encoded:
                dialect.final = orjson.loads(body)  # as guardrails(out) rewrote it
                dialect.encoded = body
        await self._kept()
        await self._send(message)

    def _resized(self, length: int) -> Message:
        start, self._held = self._held, None
        assert start is not None
        size = str(length).encode()
        start["headers"] = [(k, size if k == b"content-length" else v) for k, v in start["headers"]]
        return start

    async def _kept(self) -> None:
        if self.dialect.final is not None and self.keeps:
            self.keeps = False  # once
            await self._keep()
