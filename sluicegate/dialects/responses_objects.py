"""The Responses API's objects: the ``response`` around its output, its output items
(messages, function and custom tool calls, reasoning) and its usage, built from the
canonical (OpenAI chat) answer. Shared by whole answers and streams."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.dialects.responses_items import item_id, seal
from sluicegate.errors import GatewayError
from sluicegate.schema.sse import encode_event

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


# ---------------------------------------------------------------- answers
def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def shell(body: dict[str, Any], id: str, created_at: int, model: str) -> dict[str, Any]:
    """The response object around its output: what it echoes of the request."""
    text = _object(body.get("text"))
    reasoning = _object(body.get("reasoning"))
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": "default",
        "store": body.get("store", True) is not False,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def to_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": prompt + completion,
    }


def message_item(id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(
    id: str, call_id: str, name: str, arguments: str, custom: bool, status: str = "completed"
) -> dict[str, Any]:
    if custom:
        try:
            value = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            value = {"input": arguments}
        text = value.get("input", "") if isinstance(value, dict) else str(value)
        return {
            "type": "custom_tool_call",
            "id": id,
            "status": status,
            "call_id": call_id,
            "name": name,
            "input": text if isinstance(text, str) else orjson.dumps(text).decode(),
        }
    return {
        "type": "function_call",
        "id": id,
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(id: str, text: str, blocks: list[dict[str, Any]] | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": id,
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    if blocks:
        item["encrypted_content"] = seal(blocks)
    return item


def output_of(message: dict[str, Any], custom: frozenset[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    blocks = message.get("reasoning_blocks")
    if message.get("reasoning_content") or blocks:
        text = str(message.get("reasoning_content") or "")
        items.append(reasoning_item(item_id("rs"), text, blocks))
    if message.get("content"):
        items.append(message_item(item_id("msg"), str(message["content"])))
    elif message.get("refusal"):
        refusal = {"type": "refusal", "refusal": str(message["refusal"])}
        items.append({**message_item(item_id("msg"), ""), "content": [refusal]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments or {}).decode()
        call_id = str(call.get("id") or item_id("call"))
        items.append(call_item(item_id("fc"), call_id, name, arguments, name in custom))
    return items


def finish(response: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """Mark ``response`` completed, or incomplete when the provider stopped short."""
    why = _INCOMPLETE.get(reason or "")
    response["status"] = "incomplete" if why else "completed"
    response["incomplete_details"] = {"reason": why} if why else None
    return response


def failed_event(response: dict[str, Any], error: GatewayError, sequence: int) -> bytes:
    response = {
        **response,
        "status": "failed",
        "error": {"code": error.code or error.client_type, "message": error.message},
    }
    payload = {"type": "response.failed", "sequence_number": sequence, "response": response}
    return encode_event("response.failed", payload)
