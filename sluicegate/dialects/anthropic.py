"""The Anthropic client dialect: ``/v1/messages`` in front of any provider.

Requests become canonical (OpenAI chat) bodies: ``system`` turns into system
messages, ``tool_use`` blocks into ``tool_calls``, ``tool_result`` blocks into
``tool`` messages. Canonical answers become ``message`` objects, and canonical
chunks become Anthropic's event sequence with one content block at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from sluicegate.dialects.base import Parsed
from sluicegate.dialects.openai import parse_json_object
from sluicegate.errors import GatewayError, InvalidRequest
from sluicegate.schema.sse import encode_event

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# ---------------------------------------------------------------- requests
def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise InvalidRequest(f"{where}.source must be a base64 or url image source", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn -> tool messages (first) and a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        here = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, here))
        elif kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else _text_of(result)
            if block.get("is_error"):
                text = f"Error: {text}"
            tools.append(
                {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}
            )
        elif kind in ("document", "search_result"):
            raise InvalidRequest(f"{here}: {kind} blocks are not supported yet", param=here)
        else:
            raise InvalidRequest(f"{here}: unknown content block type {kind!r}", param=here)
    messages = tools
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        messages.append(
            {"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts}
        )
    return messages


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # only the provider that wrote it can read it back
        else:
            here = f"{where}.content[{i}]"
            raise InvalidRequest(f"{here}: unknown content block type {kind!r}", param=here)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    raise InvalidRequest("tool_choice.type must be auto, any, tool or none", param="tool_choice")


def to_canonical(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required", param="model")
    messages_in = body.get("messages")
    if not isinstance(messages_in, list) or not messages_in:
        raise InvalidRequest("messages: must be a non-empty list", param="messages")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: must be a positive integer", param="max_tokens")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        if not isinstance(system, str | list):
            raise InvalidRequest(
                "system: must be a string or a list of text blocks", param="system"
            )
        messages.append({"role": "system", "content": _text_of(system)})
    for i, message in enumerate(messages_in):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"{where}.role: must be 'user' or 'assistant'", param=f"{where}.role"
            )
        content = message.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(
                f"{where}.content: must be a string or a list", param=f"{where}.content"
            )
        if message["role"] == "user":
            messages.extend(_user_messages(content, where))
        else:
            messages.append(_assistant_message(content, where))
    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    **({"description": t["description"]} if t.get("description") else {}),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    user_id = (body.get("metadata") or {}).get("user_id")
    if isinstance(user_id, str):
        out["user"] = user_id
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        # Kept as an extension of the canonical form: the Anthropic adapter
        # sends it on, OpenAI-format providers never see it.
        out["thinking"] = thinking
    return out


# ---------------------------------------------------------------- answers
def to_anthropic_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    read = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - read - written, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": written,
    }


def _tool_input(arguments: Any) -> Any:
    if not isinstance(arguments, str) or not arguments:
        return arguments or {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}


def _message_id(canonical_id: Any) -> str:
    text = str(canonical_id or "")
    return text if text.startswith("msg_") else "msg_" + text


def to_message(canonical: dict[str, Any]) -> dict[str, Any]:
    choice = (canonical.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        content.append(
            {"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}
        )
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": _tool_input(function.get("arguments")),
            }
        )
    return {
        "id": _message_id(canonical.get("id")),
        "type": "message",
        "role": "assistant",
        "model": canonical.get("model", ""),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": to_anthropic_usage(canonical.get("usage")),
    }


class AnthropicStreamEncoder:
    """Canonical chunks -> Anthropic events, opening and closing one block at a time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block = -1  # index of the open content block, -1: none
        self.block_kind = ""
        self.tool_blocks: dict[int, int] = {}  # canonical tool_call index -> block index
        self.stop_reason = "end_turn"
        self.usage: dict[str, Any] | None = None

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        message: dict[str, Any] = {
            "id": _message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return encode_event("message_start", {"type": "message_start", "message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self.block += 1
        self.block_kind = kind
        event = {"type": "content_block_start", "index": self.block, "content_block": block}
        return out + encode_event("content_block_start", event)

    def _close_block(self) -> bytes:
        if not self.block_kind:
            return b""
        self.block_kind = ""
        return encode_event(
            "content_block_stop", {"type": "content_block_stop", "index": self.block}
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": self.block, "delta": delta}
        return encode_event("content_block_delta", event)

    def encode(self, chunks: list[dict[str, Any]]) -> bytes:
        out = b""
        for chunk in chunks:
            if not self.started:
                out += self._start(chunk)
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                out += self._choice(choice)
        return out

    def _choice(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            if self.block_kind != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": ""})
            out += self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]})
        if delta.get("content"):
            if self.block_kind != "text":
                out += self._open("text", {"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": delta["content"]})
        for call in delta.get("tool_calls") or []:
            index = call.get("index", 0)
            function = call.get("function") or {}
            if index not in self.tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": function.get("name", ""),
                    "input": {},
                }
                out += self._open("tool_use", block)
                self.tool_blocks[index] = self.block
            if function.get("arguments") and self.tool_blocks[index] == self.block:
                out += self._delta(
                    {"type": "input_json_delta", "partial_json": function["arguments"]}
                )
        if choice.get("finish_reason"):
            self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def close(self) -> bytes:
        out = b"" if self.started else self._start({})
        out += self._close_block()
        usage = to_anthropic_usage(self.usage)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": usage,
        }
        out += encode_event("message_delta", delta)
        return out + encode_event("message_stop", {"type": "message_stop"})

    def error(self, error: GatewayError) -> bytes:
        return encode_event("error", error.anthropic_body())


def estimate_tokens(body: dict[str, Any]) -> int:
    """A documented approximation: about four characters per token."""
    text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])
    return max(1, len(text) // 4)


class AnthropicDialect:
    name = "anthropic"
    native_endpoints: Mapping[str, str] = MappingProxyType({})
    forward_headers: tuple[bytes, ...] = (b"anthropic-version", b"anthropic-beta")

    def parse(self, endpoint: str, raw: bytes) -> Parsed:
        body = parse_json_object(raw)
        if endpoint == "count_tokens":
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidRequest("model: Field required", param="model")
            return Parsed(body, model, body)
        canonical = to_canonical(body)
        return Parsed(canonical, canonical["model"], body)

    def encode_response(self, endpoint: str, canonical: dict[str, Any]) -> bytes:
        return orjson.dumps(to_message(canonical))

    def stream_encoder(self, canonical: dict[str, Any], model: str) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(model)

    def stream_done(self, event: bytes) -> bool:
        # An error event also ends the stream: nothing may follow it.
        return event.startswith((b"event: message_stop", b"event: error"))

    def error_event(self, error: GatewayError) -> bytes:
        return encode_event("error", error.anthropic_body())
