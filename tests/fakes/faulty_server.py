"""An OpenAI-compatible upstream whose failures a test switches on and off.

``mode`` picks the behaviour of the next requests:

    ok            a normal answer naming this server ("answer from <name>"), streamed when asked
    <status>      that status ("500", "502", "503", "429": the last with Retry-After)
    hang          never answers
    reset         accepts the request, then closes the connection without answering
    reset-stream  sends two stream events, then closes the connection
    slow-stream   waits ``delay`` seconds before the first stream event

It can be stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer


class FaultyUpstream(FakeServer):
    def __init__(self, name: str, port: int = 0) -> None:
        super().__init__(port)
        self.name = name
        self.mode = "ok"
        self.delay = 1.0
        self.retry_after = "1"
        self.served = 0  # requests answered with 200

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        mode = self.mode
        if mode.isdigit():
            headers = {"Retry-After": self.retry_after} if mode == "429" else {}
            error = {"error": {"message": f"{self.name} says {mode}", "type": "server_error"}}
            return web.json_response(error, status=int(mode), headers=headers)
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        text = f"answer from {self.name}"
        if not body.get("stream"):
            self.served += 1
            return web.json_response(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if mode == "slow-stream":
            await asyncio.sleep(self.delay)

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        await response.write(event({"role": "assistant", "content": ""}))
        for i, word in enumerate(text.split(" ")):
            await response.write(event({"content": word if i == 0 else " " + word}))
            if mode == "reset-stream" and i == 0:
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write(event({}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.served += 1
        return response
