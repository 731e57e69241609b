"""A fake OpenAI API: a real HTTP server on loopback speaking OpenAI's wire format.

Answers come from ``brain.answer``. The model name picks special behaviours
(the gateway rewrites the client's model to the target's):

    fail-<status>        that status with an OpenAI error body (429 adds Retry-After: 7)
    flaky-<status>       <status> on the first call for this name, then a normal answer
    busy-<seconds>-*     429 with Retry-After: <seconds> on the first call, then an answer
    quota-*              429 insufficient_quota (Retry-After: 1), every time
    slow                 sleeps 2 s before answering
    drop-stream          streams two chunks, then cuts the connection
    stall-stream         streams one chunk, then goes silent
    gated-stream         streams one chunk, then waits for ``gate.set()``
    trickle-stream       streams 100 words, one every 0.1 s; a cut connection is noted in ``cut``
    no-usage*            never reports usage, in whole answers or streams (include_usage or not)

``/v1/responses`` speaks OpenAI's Responses API (``openai_responses``).

``style`` makes it stream the way an OpenAI-compatible server does:

    openai      OpenAI's own: a tool call's id, type and name in its first chunk only;
                usage in a last chunk of its own (empty ``choices``) when include_usage
    llama.cpp   llama.cpp's server: every chunk of a tool call repeats its index, id,
                type and name; usage (with llama.cpp's ``timings``) as OpenAI's
    mistral     Mistral's API: a body that holds ``stream_options`` is a 422
                (extra_forbidden); usage always rides on the stream's finishing chunk
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import openai_responses
from tests.fakes.brain import Answer, Turn, answer, split_json
from tests.fakes.server import FakeServer

# What Mistral's API answers to a field it does not know, such as stream_options.
_EXTRA_FORBIDDEN = {
    "object": "error",
    "message": {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "stream_options"],
                "msg": "Extra inputs are not permitted",
            }
        ]
    },
    "type": "invalid_request_error",
    "param": None,
    "code": None,
}
FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def read_turn(body: dict[str, Any]) -> Turn:
    stop = body.get("stop") or []
    turn = Turn(
        stop=[stop] if isinstance(stop, str) else stop,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
    )
    messages = body["messages"]
    turn.system = " ".join(
        _text_of(m.get("content")) for m in messages if m["role"] in ("system", "developer")
    )
    turn.json_mode = (body.get("response_format") or {}).get("type") in (
        "json_object",
        "json_schema",
    )
    turn.tools = [t["function"]["name"] for t in body.get("tools") or []]
    choice = body.get("tool_choice") or "auto"
    turn.tool_choice = choice if isinstance(choice, str) else choice["function"]["name"]
    turn.thinking = body.get("reasoning_effort") is not None
    turn.prompt_words = sum(len(_text_of(m.get("content")).split()) for m in messages)
    trailing_tools = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        trailing_tools.insert(0, (message["tool_call_id"], _text_of(message.get("content"))))
    turn.tool_results = trailing_tools
    for message in messages:
        if message["role"] != "user":
            continue
        content = message.get("content")
        turn.user_text = _text_of(content)
        turn.images = []
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                turn.images.append(
                    f"base64 {url[5 : url.index(';')]}" if url.startswith("data:") else "url"
                )
    return turn


def _usage(ans: Answer) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": ans.prompt_tokens,
        "completion_tokens": ans.completion_tokens,
        "total_tokens": ans.prompt_tokens + ans.completion_tokens,
    }
    if ans.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": ans.cached_tokens}
    return usage


def _tool_calls(ans: Answer) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments_json},
        }
        for c in ans.tool_calls
    ]


class FakeOpenAI(FakeServer):
    def __init__(self, style: str = "openai", tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls=tls)
        assert style in ("openai", "llama.cpp", "mistral")
        self.style = style
        self.sent: list[bytes] = []  # each stream's bytes, as written
        self.gate = threading.Event()
        self.cut: list[float] = []  # seconds into a trickle-stream when the client went away
        self.delay = 0.0  # seconds every chat answer waits before it starts (a slow provider)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{prefix:.*}responses/input_tokens", self.input_tokens)
        app.router.add_post("/{prefix:.*}responses", self.responses)
        app.router.add_post("/{prefix:.*}chat/completions", self.chat)
        app.router.add_post("/{prefix:.*}embeddings", self.embeddings)
        app.router.add_get("/{prefix:.*}models", self.models)

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

    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await openai_responses.responses(self, request)

    async def input_tokens(self, request: web.Request) -> web.Response:
        return await openai_responses.input_tokens(self, request)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model", ""))
        calls = self.count(model)
        if request.headers.get("authorization") == "Bearer sk-wrong":
            return self._error(401)
        if model.startswith("fail-"):
            return self._error(int(model.removeprefix("fail-")))
        if model.startswith("flaky-") and calls == 1:
            return self._error(int(model.removeprefix("flaky-")))
        if model.startswith("busy-") and calls == 1:
            busy = self._error(429)
            busy.headers["Retry-After"] = model.split("-")[1]
            return busy
        if self.style == "mistral" and "stream_options" in body:
            return web.json_response(_EXTRA_FORBIDDEN, status=422)
        if model.startswith("quota-"):
            return web.json_response(
                {
                    "error": {
                        "message": "You exceeded your current quota.",
                        "type": "insufficient_quota",
                        "param": None,
                        "code": "insufficient_quota",
                    }
                },
                status=429,
                headers={"Retry-After": "1"},
            )
        if model == "slow":
            await asyncio.sleep(2)
        if self.delay:
            await asyncio.sleep(self.delay)
        ans = answer(read_turn(body))
        if model == "trickle-stream":
            return await self._trickle(request, model)
        if body.get("stream"):
            return await self._stream(request, body, ans)
        message: dict[str, Any] = {"role": "assistant", "content": ans.text}
        if ans.tool_calls:
            message["tool_calls"] = _tool_calls(ans)
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": FINISH[ans.finish]}],
                **({} if model.startswith("no-usage") else {"usage": _usage(ans)}),
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], ans: Answer
    ) -> web.StreamResponse:
        model = body["model"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        reports = not model.startswith("no-usage")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
        }
        sent = bytearray()
        self.sent.append(b"")

        async def event(payload: dict[str, Any]) -> None:
            data = b"data: " + orjson.dumps(payload) + b"\n\n"
            sent.extend(data)
            self.sent[-1] = bytes(sent)
            await response.write(data)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        await event(chunk({"role": "assistant", "content": ""}))
        for i, word in enumerate(ans.words()):
            await event(chunk({"content": word}))
            if model == "drop-stream" and i == 1:
                assert request.transport is not None
                request.transport.close()
                return response
            if model == "stall-stream" and i == 0:
                await asyncio.sleep(3)
            if model == "gated-stream" and i == 0:
                await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 10)
        for index, call in enumerate(_tool_calls(ans)):
            await self._tool_call(event, chunk, index, call)
        finish = chunk({}, FINISH[ans.finish])
        if self.style == "mistral" and reports:
            finish["usage"] = _usage(ans)
        await event(finish)
        if include_usage and reports and self.style != "mistral":
            last: dict[str, Any] = {**base, "choices": [], "usage": _usage(ans)}
            if self.style == "llama.cpp":
                last["timings"] = {"prompt_n": ans.prompt_tokens, "predicted_n": 1}
            await event(last)
        await response.write(b"data: [DONE]\n\n")
        self.sent[-1] = bytes(sent) + b"data: [DONE]\n\n"
        await response.write_eof()
        return response

    async def _tool_call(
        self,
        event: Callable[[dict[str, Any]], Awaitable[None]],
        chunk: Callable[[dict[str, Any]], dict[str, Any]],
        index: int,
        call: dict[str, Any],
    ) -> None:
        head = {"index": index, "id": call["id"], "type": "function"}
        name = call["function"]["name"]
        pieces = split_json(call["function"]["arguments"])
        if self.style == "llama.cpp":  # the head and the name again in every piece
            for piece in pieces:
                delta = {**head, "function": {"name": name, "arguments": piece}}
                await event(chunk({"tool_calls": [delta]}))
            return
        await event(chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]}))
        for piece in pieces:
            await event(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))

    async def _trickle(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        started = time.monotonic()
        try:
            for i in range(100):
                chunk = {
                    "id": "chatcmpl-trickle",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": f"w{i:02d} "}}],
                }
                await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            self.cut.append(time.monotonic() - started)
            raise
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self.record(request)
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
