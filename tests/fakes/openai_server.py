"""A fake OpenAI API: a real HTTP server on loopback speaking OpenAI's wire format.

The model name in the request picks the behaviour, so one server covers every
case (the gateway rewrites the client's model to the target's):

    any other name       a normal answer, streamed when asked (usage on request)
    fail-<status>        that status with an OpenAI error body (429 adds Retry-After: 7)
    flaky-<status>       <status> on the first call for this name, then a normal answer
    slow                 sleeps 2 s before answering
    drop-stream          streams two chunks, then cuts the connection
    stall-stream         streams one chunk, then goes silent
    gated-stream         streams one chunk, then waits for ``release_gate()``
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
from aiohttp import web


def reply_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else "?"
            return f"Hello from the fake: {text}"
    return "Hello from the fake"


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.gate = threading.Event()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> dict[str, Any]:
        return self.requests[-1]

    # ------------------------------------------------------------------ server
    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_post("/{prefix:.*}chat/completions", self.chat)
            app.router.add_post("/{prefix:.*}embeddings", self.embeddings)
            app.router.add_get("/{prefix:.*}models", self.models)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- handlers
    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        body: dict[str, Any] = orjson.loads(raw)
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
                "raw": raw,
            }
        )
        return body

    def _error(self, status: int) -> web.Response:
        kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
        error = {
            "error": {
                "message": f"fake upstream error {status}",
                "type": kinds.get(
                    status, "invalid_request_error" if status < 500 else "server_error"
                ),
                "param": "temperature" if status == 400 else None,
                "code": "fake_code" if status < 500 else None,
            }
        }
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.json_response(error, status=status, headers=headers)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        model = str(body.get("model", ""))
        self.calls[model] = self.calls.get(model, 0) + 1
        if model.startswith("fail-"):
            return self._error(int(model.removeprefix("fail-")))
        if model.startswith("flaky-") and self.calls[model] == 1:
            return self._error(int(model.removeprefix("flaky-")))
        if model == "slow":
            await asyncio.sleep(2)
        text = reply_text(body)
        if body.get("stream"):
            return await self._stream(request, body, text)
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(body, text),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str
    ) -> web.StreamResponse:
        model = body["model"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
        }

        async def event(payload: dict[str, Any]) -> None:
            await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        await event(chunk({"role": "assistant", "content": ""}))
        words = text.split(" ")
        for i, word in enumerate(words):
            await event(chunk({"content": word if i == 0 else " " + word}))
            if model == "drop-stream" and i == 1:
                assert request.transport is not None
                request.transport.close()
                return response
            if model == "stall-stream" and i == 0:
                await asyncio.sleep(3)
            if model == "gated-stream" and i == 0:
                await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 10)
        await event(chunk({}, "stop"))
        if include_usage:
            await event({**base, "choices": [], "usage": _usage(body, text)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "model": body.get("model"),
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})
