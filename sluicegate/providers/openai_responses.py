"""Canonical chat <-> OpenAI's Responses API, for services with ``api: responses``.

Some of OpenAI's models are served by the Responses API only. A service with ``api:
responses`` (OpenAI, Azure) sends chat-completions requests there: messages become
input items, function tools and ``response_format`` their Responses equivalents; the
answer's output items become a chat message, and the semantic event stream becomes
chat chunks. Nothing is stored at OpenAI (``store: false``), as chat completions are not.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from sluicegate.errors import InvalidRequest, UpstreamError
from sluicegate.providers.base import SSEDecoder

_REFUSED = ("stop", "logprobs", "top_logprobs", "n", "presence_penalty", "frequency_penalty")


# ---------------------------------------------------------------- requests
def _parts(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            out.append({"type": "input_text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            item: dict[str, Any] = {"type": "input_image", "image_url": url}
            if isinstance(image, dict) and image.get("detail"):
                item["detail"] = image["detail"]
            out.append(item)
        else:
            raise InvalidRequest(
                f"content parts of type {kind!r} are not supported by the Responses API",
                param="messages",
            )
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in content or [] if isinstance(p, dict) and "text" in p
    )


def to_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            text = _text(message.get("content"))
            if text:
                part = {"type": "output_text", "text": text}
                items.append({"type": "message", "role": "assistant", "content": [part]})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": str(call.get("id", "")),
                        "name": str(function.get("name", "")),
                        "arguments": str(function.get("arguments") or "{}"),
                    }
                )
        elif role in ("tool", "function"):
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": str(message.get("tool_call_id") or message.get("name") or ""),
                    "output": _text(message.get("content")),
                }
            )
        else:
            items.append({"role": role, "content": _parts(message.get("content"))})
    return items


def to_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Responses API request for canonical chat ``body``."""
    for name in _REFUSED:
        value = body.get(name)
        if value in (None, False, 0, "", []) or (name == "n" and value == 1):
            continue
        raise InvalidRequest(f"{name} is not supported by the Responses API", param=name)
    out: dict[str, Any] = {"model": model, "input": to_items(body["messages"]), "store": False}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out["max_output_tokens"] = limit
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "metadata"):
        if body.get(name) is not None:
            out[name] = body[name]
    tools = []
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        entry = {"type": "function", "name": function.get("name", "")}
        for key in ("description", "parameters", "strict"):
            if function.get(key) is not None:
                entry[key] = function[key]
        tools.append(entry)
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {"type": "function", "name": (choice.get("function") or {})["name"]}
    elif choice is not None:
        out["tool_choice"] = choice
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["text"] = {"format": {"type": "json_object"}}
    if body.get("reasoning_effort") is not None:
        out["reasoning"] = {"effort": body["reasoning_effort"]}
    if body.get("stream") is True:
        out["stream"] = True
    return out


# ---------------------------------------------------------------- answers
def usage_of(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def _finish(response: dict[str, Any], calls: bool) -> str:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if reason == "max_output_tokens":
        return "length"
    if reason == "content_filter":
        return "content_filter"
    return "tool_calls" if calls else "stop"


def to_completion(response: dict[str, Any], model: str) -> dict[str, Any]:
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        kind = item.get("type")
        if kind == "message":
            texts.extend(
                str(p.get("text") or p.get("refusal") or "") for p in item.get("content") or []
            )
        elif kind in ("function_call", "custom_tool_call"):
            arguments = item.get("arguments", "")
            if kind == "custom_tool_call":  # as a function of one argument (dialects.responses)
                arguments = orjson.dumps({"input": item.get("input", "")}).decode()
            function = {"name": item.get("name", ""), "arguments": arguments}
            calls.append({"id": item.get("call_id", ""), "type": "function", "function": function})
        elif kind == "reasoning":
            reasoning.extend(str(s.get("text", "")) for s in item.get("summary") or [])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    out: dict[str, Any] = {
        "id": str(response.get("id", "")),
        "object": "chat.completion",
        "created": int(response.get("created_at") or time.time()),
        "model": str(response.get("model") or model),
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish(response, bool(calls))}
        ],
    }
    usage = usage_of(response.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


class ResponsesEvents(SSEDecoder):
    """The Responses API's semantic events -> canonical chunks."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.calls: dict[str, int] = {}  # item id -> tool_calls index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        event = orjson.loads(data)
        kind = event.get("type", name)
        if kind == "response.output_text.delta":
            return [self._chunk({"content": event.get("delta", "")})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(event.get("item_id", ""))
            if index is None:
                return []
            call = {"index": index, "function": {"arguments": event.get("delta", "")}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.reasoning_summary_text.delta":
            return [self._chunk({"reasoning_content": event.get("delta", "")})]
        if kind == "response.output_item.added":
            item = event.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = len(self.calls)
            self.calls[str(item.get("id", ""))] = index
            function = {"name": item.get("name", ""), "arguments": item.get("arguments") or ""}
            call = {"index": index, "id": item.get("call_id", ""), "type": "function"}
            return [self._chunk({"tool_calls": [{**call, "function": function}]})]
        if kind == "response.created":
            response = event.get("response") or {}
            self.id = str(response.get("id", ""))
            self.model = str(response.get("model") or self.model)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind in ("response.completed", "response.incomplete"):
            self.finished = True
            response = event.get("response") or {}
            out = [self._chunk({}, _finish(response, bool(self.calls)))]
            usage = usage_of(response.get("usage"))
            if usage is not None:
                out.append({**self._chunk({}), "choices": [], "usage": usage})
            return out
        if kind == "response.failed":
            error = (event.get("response") or {}).get("error") or {}
            raise UpstreamError(
                str(error.get("message") or "the response failed"), code=error.get("code")
            )
        if kind == "error":
            raise UpstreamError(
                str(event.get("message") or "error in stream"), code=event.get("code")
            )
        return []
