"""A fake Anthropic Messages API: a real HTTP server speaking Anthropic's wire format.

Answers come from ``brain.answer``. Special models:

    *fail-<status>       that status with Anthropic's error body (529 is overloaded_error)
    *prompt-too-long     400 "prompt is too long: ..."
    *error-stream        a stream that reports overloaded_error after its first delta
    *refuse              declines: "I can't help with that." and stop_reason "refusal"

(``*``: any prefix, so that a rule's glob such as ``claude-*`` can reach them.)
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.brain import Answer, Turn, answer, split_json
from tests.fakes.server import FakeServer

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if b.get("type") == "text")


def read_turn(body: dict[str, Any]) -> Turn:
    turn = Turn(max_tokens=body.get("max_tokens"), stop=body.get("stop_sequences") or [])
    system = body.get("system") or ""
    turn.system = system if isinstance(system, str) else _text_of(system)
    turn.json_mode = "JSON" in turn.system
    turn.tools = [t["name"] for t in body.get("tools") or []]
    choice = body.get("tool_choice") or {"type": "auto"}
    turn.tool_choice = {"auto": "auto", "any": "required", "none": "none"}.get(
        choice["type"], choice.get("name", "auto")
    )
    turn.thinking = (body.get("thinking") or {}).get("type") == "enabled"
    words = len(turn.system.split())
    for message in body["messages"]:
        content = message["content"]
        words += len(_text_of(content).split())
    last = body["messages"][-1]
    content = last["content"]
    if isinstance(content, str):
        turn.user_text = content
    else:
        for block in content:
            if block["type"] == "text":
                turn.user_text = block["text"]
            elif block["type"] == "tool_result":
                result = block.get("content")
                turn.tool_results.append((block["tool_use_id"], _text_of(result or "")))
            elif block["type"] == "image":
                source = block["source"]
                kind = f"base64 {source['media_type']}" if source["type"] == "base64" else "url"
                turn.images.append(kind)
    turn.prompt_words = words
    return turn


def _usage(ans: Answer) -> dict[str, int]:
    return {
        "input_tokens": ans.prompt_tokens,
        "output_tokens": ans.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": ans.cached_tokens,
    }


def message_body(ans: Answer, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if ans.thinking:
        content.append({"type": "thinking", "thinking": ans.thinking, "signature": "sig-fake"})
    if ans.text is not None:
        content.append({"type": "text", "text": ans.text})
    for call in ans.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return {
        "id": "msg_fake_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[ans.finish],
        "stop_sequence": None,
        "usage": _usage(ans),
    }


def stream_events(ans: Answer, model: str, fail_after_first: bool = False) -> list[bytes]:
    def event(name: str, payload: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    start = message_body(ans, model)
    start.update(content=[], stop_reason=None, usage={**_usage(ans), "output_tokens": 1})
    out = [
        event("message_start", {"type": "message_start", "message": start}),
        event("ping", {"type": "ping"}),
    ]
    index = 0
    if ans.thinking:
        out.append(
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "thinking", "thinking": ""},
                },
            )
        )
        out.append(
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "thinking_delta", "thinking": ans.thinking},
                },
            )
        )
        out.append(
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "signature_delta", "signature": "sig"},
                },
            )
        )
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    if ans.text is not None:
        out.append(
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        for n, word in enumerate(ans.words()):
            out.append(
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": word},
                    },
                )
            )
            if fail_after_first and n == 0:
                out.append(
                    event(
                        "error",
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": "Overloaded"},
                        },
                    )
                )
                return out
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    for call in ans.tool_calls:
        out.append(
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": {},
                    },
                },
            )
        )
        for piece in split_json(call.arguments_json):
            out.append(
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    out.append(
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": STOP_REASONS[ans.finish], "stop_sequence": None},
                "usage": {"output_tokens": ans.completion_tokens},
            },
        )
    )
    out.append(event("message_stop", {"type": "message_stop"}))
    return out


class FakeAnthropic(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        return web.json_response(
            {"input_tokens": read_turn({**body, "max_tokens": 1}).prompt_words + 1000}
        )

    def _error(self, status: int, message: str | None = None) -> web.Response:
        kind = ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message or f"fake {kind}"}}
        headers = {"retry-after": "7"} if status == 429 else {}
        return web.json_response(body, status=status, headers=headers)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model", ""))
        key = request.headers.get("x-api-key") or request.headers.get(
            "authorization", ""
        ).removeprefix("Bearer ")
        if key != "sk-ant-fake":
            return self._error(401, "invalid x-api-key")
        if "fail-" in model:
            return self._error(int(model.split("fail-")[1]))
        if model.endswith("prompt-too-long"):
            return self._error(400, "prompt is too long: 250000 tokens > 200000 maximum")
        for required in ("max_tokens", "messages"):
            if required not in body:
                return self._error(400, f"{required}: Field required")
        ans = answer(read_turn(body), id_prefix="toolu")
        if model.endswith("refuse"):
            ans.text, ans.tool_calls, ans.finish = "I can't help with that.", [], "refusal"
        if not body.get("stream"):
            return web.json_response(message_body(ans, model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in stream_events(ans, model, fail_after_first=model.endswith("error-stream")):
            await response.write(chunk)
        await response.write_eof()
        return response
