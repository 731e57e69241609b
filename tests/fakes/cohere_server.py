"""A fake Cohere API (Chat v2 and Embed v2): a real HTTP server speaking Cohere's wire format.

Answers come from ``brain.answer``. Special models:

    fail-<status>        that status with Cohere's error body {"id", "message"} (429 adds
                         Retry-After: 7)
    prompt-too-long      400 "too many tokens: ..."
    error-stream         a stream whose message-end reports finish_reason ERROR after the
                         first text delta
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.brain import Answer, Turn, answer, split_json
from tests.fakes.server import FakeServer

KEY = "co-fake"
FINISH = {
    "stop": "COMPLETE",
    "length": "MAX_TOKENS",
    "tool_calls": "TOOL_CALL",
    "stop_sequence": "STOP_SEQUENCE",
}
TOOL_PLAN = "I will call the tools to answer."


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def read_turn(body: dict[str, Any]) -> Turn:
    turn = Turn(stop=body.get("stop_sequences") or [], max_tokens=body.get("max_tokens"))
    messages = body["messages"]
    turn.system = " ".join(_text_of(m.get("content")) for m in messages if m["role"] == "system")
    turn.json_mode = (body.get("response_format") or {}).get("type") == "json_object"
    turn.tools = [t["function"]["name"] for t in body.get("tools") or []]
    turn.tool_choice = {"REQUIRED": "required", "NONE": "none"}.get(
        body.get("tool_choice", ""), "auto"
    )
    turn.thinking = (body.get("thinking") or {}).get("type") == "enabled"
    turn.prompt_words = sum(len(_text_of(m.get("content")).split()) for m in messages)
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        turn.tool_results.insert(0, (message["tool_call_id"], _text_of(message["content"])))
    for message in messages:
        if message["role"] != "user":
            continue
        content = message["content"]
        turn.user_text = _text_of(content)
        turn.images = []
        for part in content if isinstance(content, list) else []:
            if part["type"] == "image_url":
                url = part["image_url"]["url"]
                turn.images.append(
                    f"base64 {url[5 : url.index(';')]}" if url.startswith("data:") else "url"
                )
    return turn


def usage(ans: Answer) -> dict[str, Any]:
    counts = {"input_tokens": ans.prompt_tokens, "output_tokens": ans.completion_tokens}
    return {"billed_units": counts, "tokens": counts, "cached_tokens": ans.cached_tokens}


def _tool_calls(ans: Answer) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for call in ans.tool_calls
    ]


def chat_body(ans: Answer, response_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    content: list[dict[str, Any]] = []
    if ans.thinking:
        content.append({"type": "thinking", "thinking": ans.thinking})
    if ans.text is not None:
        content.append({"type": "text", "text": ans.text})
    if content:
        message["content"] = content
    if ans.tool_calls:
        message["tool_plan"] = TOOL_PLAN
        message["tool_calls"] = _tool_calls(ans)
    return {
        "id": response_id,
        "message": message,
        "finish_reason": FINISH[ans.finish],
        "usage": usage(ans),
    }


def event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def stream_events(ans: Answer, response_id: str, fail_after_first: bool = False) -> list[bytes]:
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    out = [event({"id": response_id, "type": "message-start", "delta": {"message": start}})]
    index = 0

    def block(kind: str, pieces: list[str]) -> bool:
        """One content block; False when the stream broke off inside it."""
        nonlocal index
        opening = {"type": kind, kind: ""}
        out.append(
            event(
                {
                    "type": "content-start",
                    "index": index,
                    "delta": {"message": {"content": opening}},
                }
            )
        )
        for n, piece in enumerate(pieces):
            content = {kind: piece}
            out.append(
                event(
                    {
                        "type": "content-delta",
                        "index": index,
                        "delta": {"message": {"content": content}},
                    }
                )
            )
            if fail_after_first and kind == "text" and n == 0:
                end = {"finish_reason": "ERROR", "error": "Overloaded: the model is busy"}
                out.append(event({"id": response_id, "type": "message-end", "delta": end}))
                return False
        out.append(event({"type": "content-end", "index": index}))
        index += 1
        return True

    if ans.thinking:
        block("thinking", [ans.thinking])
    if ans.text is not None and not block("text", ans.words()):
        return out
    if ans.tool_calls:
        words = TOOL_PLAN.split(" ")
        for plan in [words[0], *(" " + w for w in words[1:])]:
            out.append(
                event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan}}})
            )
    for n, call in enumerate(ans.tool_calls):
        head = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append(
            event(
                {"type": "tool-call-start", "index": n, "delta": {"message": {"tool_calls": head}}}
            )
        )
        for piece in split_json(call.arguments_json):
            fragment = {"function": {"arguments": piece}}
            out.append(
                event(
                    {
                        "type": "tool-call-delta",
                        "index": n,
                        "delta": {"message": {"tool_calls": fragment}},
                    }
                )
            )
        out.append(event({"type": "tool-call-end", "index": n}))
    end = {"finish_reason": FINISH[ans.finish], "usage": usage(ans)}
    out.append(event({"id": response_id, "type": "message-end", "delta": end}))
    return out


def vector(text: str) -> list[float]:
    """A deterministic embedding; multiples of 1/8 survive float32 exactly."""
    return [(len(text) % 8) / 8, 0.5, -0.25]


class FakeCohere(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)
        app.router.add_post("/v2/embed", self.embed)

    def _error(self, status: int, message: str | None = None) -> web.Response:
        body = {"id": str(uuid.uuid4()), "message": message or f"fake error {status}"}
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.json_response(body, status=status, headers=headers)

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return self._error(401, "invalid api token")
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        model = str(body.get("model", ""))
        if model.startswith("fail-"):
            return self._error(int(model.removeprefix("fail-")))
        if model == "prompt-too-long":
            return self._error(
                400,
                "too many tokens: size limit exceeded by 1711 tokens. Try using shorter or "
                "fewer inputs, or setting prompt_truncation='AUTO'.",
            )
        for required in ("model", "messages"):
            if required not in body:
                return self._error(400, f"invalid request: {required} is required")
        ans = answer(read_turn(body), id_prefix="get_weather_call")
        response_id = str(uuid.uuid4())
        if not body.get("stream"):
            return web.json_response(chat_body(ans, response_id))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in stream_events(ans, response_id, fail_after_first=model == "error-stream"):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def embed(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        texts = body.get("texts")
        if not isinstance(texts, list) or body.get("input_type") is None:
            return self._error(400, "invalid request: texts and input_type are required")
        floats = [vector(t) for t in texts]
        embeddings: dict[str, Any] = {}
        for kind in body.get("embedding_types") or ["float"]:
            if kind == "float":
                embeddings["float"] = floats
            elif kind == "base64":
                # Not OpenAI's encoding: decoding it as float32s would give nonsense.
                embeddings["base64"] = ["Y29oZXJlLWJhc2U2NA==" for _ in texts]
        return web.json_response(
            {
                "id": str(uuid.uuid4()),
                "embeddings": embeddings,
                "texts": texts,
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"input_tokens": sum(len(t.split()) for t in texts)},
                },
                "response_type": "embeddings_by_type",
            }
        )
