"""A fake provider-native API behind a header key: what ``/passthrough`` must relay untouched.

Every request is kept as it arrived (method, raw path, query, headers, body bytes). Routes:

    POST /v1beta/models/{model}:generateContent   Gemini's native shape, answered as JSON
    POST /v1beta/models/{model}:streamGenerateContent
                        Server-Sent Events, one every ``tick`` seconds; the second waits for
                        ``gate.set()`` so a test can see the first reach its client early
    POST …/upload       reads the body part by part; ``first_part`` is set on the first part
    any other           echoes what it saw as JSON, with a ``set-cookie`` and a custom header

A request without ``x-goog-api-key: <key>`` gets Google's 401 body.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

NATIVE_KEY = "native-upstream-secret-1"


class FakeNative(FakeServer):
    def __init__(self, key: str = NATIVE_KEY) -> None:
        super().__init__()
        self.key = key
        self.seen: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.first_part = threading.Event()
        self.finished = threading.Event()  # a stream's last event was written

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.any)

    def _keep(self, request: web.Request, body: bytes) -> None:
        self.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "header_list": [(k.lower(), v) for k, v in request.headers.items()],
                "body": body,
            }
        )

    async def any(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("x-goog-api-key") != self.key:
            self._keep(request, await request.read())
            error = {"error": {"code": 401, "message": "API key not valid.", "status": "UNAUTH"}}
            return web.json_response(error, status=401)
        if request.path.endswith("/upload"):
            return await self.upload(request)
        body = await request.read()
        self._keep(request, body)
        if request.path.endswith(":streamGenerateContent"):
            return await self.stream(request)
        if request.path.endswith(":generateContent"):
            text = orjson.loads(body)["contents"][0]["parts"][0]["text"]
            return web.json_response(
                {
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": "re: " + text}]}}
                    ],
                    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
                }
            )
        echo = {"method": request.method, "path": request.path, "query": dict(request.query)}
        return web.json_response(
            echo,
            status=201 if request.method == "POST" else 200,
            headers={"x-native-answer": "yes", "set-cookie": "native=1; Path=/"},
        )

    async def upload(self, request: web.Request) -> web.Response:
        parts = []
        async for part in request.content.iter_any():
            if not parts:
                self.first_part.set()
            parts.append(part)
        body = b"".join(parts)
        self._keep(request, body)
        return web.json_response({"bytes": len(body)})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            if i == 1:
                await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 10)
            event = {"candidates": [{"content": {"parts": [{"text": f"part {i}"}]}}]}
            await response.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
        self.finished.set()
        await response.write_eof()
        return response
