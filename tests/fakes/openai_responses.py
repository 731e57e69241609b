"""OpenAI's own Responses API (``POST /v1/responses``, ``/v1/responses/input_tokens``) for
the fake OpenAI server, in OpenAI's documented wire format, streamed or not.

Answers come from ``brain.answer`` like every fake's. A ``web_search`` tool is run (a
``web_search_call`` item, then the text "Searched: <user text>"), as only OpenAI does.
A ``previous_response_id`` is refused as OpenAI refuses an id it does not know: the
gateway's ids never reach OpenAI. A model ``reasoner*`` answers with a reasoning item
first (with ``encrypted_content`` when the request includes it). ``drop-stream`` cuts
the connection after its first text delta.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.brain import Answer, Turn, answer, split_json

_ids = itertools.count(1)
FINISH = {"length": "max_output_tokens"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(str(p["text"]) for p in content or [] if isinstance(p, dict) and "text" in p)


def _parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content")
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def _image(part: dict[str, Any]) -> str:
    url = str(part.get("image_url", ""))
    return f"base64 {url[5 : url.index(';')]}" if url.startswith("data:") else "url"


def read_turn(body: dict[str, Any]) -> Turn:
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    turn = Turn(max_tokens=body.get("max_output_tokens"))
    turn.system = str(body.get("instructions") or "")
    fmt = ((body.get("text") or {}).get("format") or {}).get("type")
    turn.json_mode = fmt in ("json_object", "json_schema")
    tools = body.get("tools") or []
    turn.tools = [t["name"] for t in tools if t.get("type") in ("function", "custom")]
    choice = body.get("tool_choice") or "auto"
    turn.tool_choice = choice if isinstance(choice, str) else choice.get("name", "auto")
    turn.thinking = body.get("reasoning") is not None
    words = len(turn.system.split())
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            words += len(_text(item.get("content")).split())
            if item.get("role") == "user":
                turn.user_text = _text(item.get("content"))
                turn.tool_results = []
                turn.images = [_image(p) for p in _parts(item) if p.get("type") == "input_image"]
        elif kind in ("function_call_output", "custom_tool_call_output"):
            turn.tool_results.append((item["call_id"], _text(item.get("output"))))
    turn.prompt_words = words
    return turn


def _usage(ans: Answer) -> dict[str, Any]:
    return {
        "input_tokens": ans.prompt_tokens,
        "input_tokens_details": {"cached_tokens": ans.cached_tokens},
        "output_tokens": ans.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": ans.prompt_tokens + ans.completion_tokens,
    }


def _items(body: dict[str, Any], ans: Answer, searched: bool) -> list[dict[str, Any]]:
    n = next(_ids)
    out: list[dict[str, Any]] = []
    if str(body.get("model", "")).startswith("reasoner"):
        item: dict[str, Any] = {
            "type": "reasoning",
            "id": f"rs_fake_{n}",
            "summary": [{"type": "summary_text", "text": "Thought about it."}],
        }
        if "reasoning.encrypted_content" in (body.get("include") or []):
            item["encrypted_content"] = f"openai-sealed-{n}"
        out.append(item)
    if searched:
        out.append(
            {
                "type": "web_search_call",
                "id": f"ws_fake_{n}",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            }
        )
    if ans.text is not None:
        part = {"type": "output_text", "text": ans.text, "annotations": [], "logprobs": []}
        out.append(
            {
                "type": "message",
                "id": f"msg_fake_{n}",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for i, call in enumerate(ans.tool_calls):
        out.append(
            {
                "type": "function_call",
                "id": f"fc_fake_{n}_{i}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments_json,
                "status": "completed",
            }
        )
    return out


def response_of(body: dict[str, Any]) -> dict[str, Any]:
    turn = read_turn(body)
    searched = any(t.get("type") == "web_search" for t in body.get("tools") or [])
    ans = answer(turn)
    if searched:
        ans.text = f"Searched: {turn.user_text}"
    status = "incomplete" if ans.finish == "length" else "completed"
    return {
        "id": f"resp_fake_{next(_ids)}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": _items(body, ans, searched),
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "usage": _usage(ans),
        "metadata": body.get("metadata") or {},
    }


def events_of(response: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The semantic events of ``response``, in OpenAI's order."""
    out: list[tuple[str, dict[str, Any]]] = []
    head = {**response, "status": "in_progress", "output": [], "usage": None}
    out.append(("response.created", {"response": head}))
    out.append(("response.in_progress", {"response": head}))
    for index, item in enumerate(response["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            out.append(
                (
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
            )
            part = item["content"][0]
            out.append(
                (
                    "response.content_part.added",
                    {**where, "content_index": 0, "part": {**part, "text": ""}},
                )
            )
            words = part["text"].split(" ")
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                out.append(
                    (
                        "response.output_text.delta",
                        {**where, "content_index": 0, "delta": delta, "logprobs": []},
                    )
                )
            out.append(
                (
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": part["text"], "logprobs": []},
                )
            )
            out.append(("response.content_part.done", {**where, "content_index": 0, "part": part}))
        elif item["type"] == "function_call":
            out.append(
                (
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"},
                    },
                )
            )
            for piece in split_json(item["arguments"]):
                out.append(("response.function_call_arguments.delta", {**where, "delta": piece}))
            out.append(
                ("response.function_call_arguments.done", {**where, "arguments": item["arguments"]})
            )
        else:
            out.append(("response.output_item.added", {"output_index": index, "item": item}))
        out.append(("response.output_item.done", {"output_index": index, "item": item}))
    last = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    out.append((last, {"response": response}))
    return [
        (name, {"type": name, "sequence_number": n, **fields})
        for n, (name, fields) in enumerate(out)
    ]


async def responses(server: Any, request: web.Request) -> web.StreamResponse:
    body = await server.record(request)
    model = str(body.get("model", ""))
    if model.startswith("fail-"):
        return server._error(int(model.removeprefix("fail-")))
    if body.get("previous_response_id"):
        error = {
            "message": f"Previous response with id '{body['previous_response_id']}' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
        return web.json_response({"error": error}, status=400)
    response = response_of(body)
    if not body.get("stream"):
        return web.json_response(response)
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await stream.prepare(request)
    sent = bytearray()
    for name, payload in events_of(response):
        data = b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
        sent.extend(data)
        await stream.write(data)
        if model == "drop-stream" and name == "response.output_text.delta":
            assert request.transport is not None
            request.transport.close()
            return stream
    server.sent.append(bytes(sent))
    await stream.write_eof()
    return stream


async def input_tokens(server: Any, request: web.Request) -> web.Response:
    body = await server.record(request)
    turn = read_turn(body)
    return web.json_response(
        {"object": "response.input_tokens", "input_tokens": max(turn.prompt_words, 1) + 1000}
    )
