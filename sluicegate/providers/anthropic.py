"""Anthropic's Messages API <-> the canonical (OpenAI chat) form.

Requests: system and developer messages are hoisted into ``system``; tool
results become ``tool_result`` blocks of a user turn; consecutive turns of one
role are merged, because the API wants user and assistant to alternate.
Answers and streams come back as OpenAI completions and chunks, tool calls,
usage (cache reads and writes included) and finish reasons mapped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from sluicegate.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamStatusError
from sluicegate.providers.base import Adapter, Endpoint, SSEDecoder, StreamDecoder, UpstreamRequest
from sluicegate.providers.common import (
    DATA_URL,
    EMPTY_SCHEMA,
    function_tools,
    split_messages,
    tool_calls,
)
from sluicegate.schema.chat import (
    ChatMessage,
    Usage,
    make_chunk,
    make_completion,
    make_usage_chunk,
    usage_from_cache_split,
)

if TYPE_CHECKING:
    from sluicegate.config.model import Service

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
_JSON_INSTRUCTION = "Respond with one valid JSON object and nothing else."


# ---------------------------------------------------------------- requests
def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}.image_url.url must be a URL or a data: URL", param=where)
    match = DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image_block(part, here))
        elif kind in _THINKING_BLOCKS and (part.get("signature") or part.get("data")):
            blocks.append(part)  # an earlier answer's reasoning, handed back (reasoning_blocks)
        else:
            raise InvalidRequest(
                f"{here}: content parts of type {kind!r} are not supported by Anthropic",
                param=here,
            )
    return blocks


def _tool_use_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [
        {"type": "tool_use", "id": call_id or f"toolu_{i}", "name": name, "input": arguments}
        for i, (call_id, name, arguments) in enumerate(tool_calls(message, where))
    ]


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_id = message.get("tool_call_id") or message.get("name")
    if not isinstance(tool_id, str):
        raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    content = message.get("content")
    result: Any = content if isinstance(content, str) else _content_blocks(content, where)
    return {"type": "tool_result", "tool_use_id": tool_id, "content": result}


_THINKING_BLOCKS = ("thinking", "redacted_thinking")
# What /v1/messages/count_tokens takes of a Messages request.
_COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


def _with_thinking(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant turn with its reasoning blocks first, as Anthropic wants them back."""
    given = message.get("reasoning_blocks")
    if message.get("role") != "assistant" or not isinstance(given, list):
        return message
    # Another provider's blocks (Gemini's) are for that provider only.
    blocks = [b for b in given if isinstance(b, dict) and b.get("type") in _THINKING_BLOCKS]
    if not blocks:
        return message
    content = message.get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
    if isinstance(content, list):
        parts = content
    return {**message, "content": [*blocks, *parts]}


def translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Anthropic system blocks, alternating Anthropic turns)."""
    texts, turns = split_messages(
        [_with_thinking(m) for m in messages],
        content=_content_blocks,
        tool_calls=_tool_use_blocks,
        tool_result=lambda all_messages, i, where: _tool_result_block(all_messages[i], where),
    )
    return [{"type": "text", "text": text} for text in texts], turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters or EMPTY_SCHEMA}
        if tool.description:
            entry["description"] = tool.description
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise InvalidRequest(
            "tool_choice is not one of auto, required, none or a function", param="tool_choice"
        )
    if parallel is False and (result is None or result["type"] != "none"):
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def translate_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    system, turns = translate_messages(body["messages"])
    if not turns:
        raise InvalidRequest(
            "Anthropic needs at least one user or assistant message", param="messages"
        )
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        instruction = _JSON_INSTRUCTION
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            instruction += " It must match this JSON schema: " + orjson.dumps(schema).decode()
        system.append({"type": "text", "text": instruction})
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and body.get("tools"):
        out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if isinstance(body.get("thinking"), dict):
        out["thinking"] = body["thinking"]
    elif (
        isinstance(body.get("reasoning_effort"), str)
        and body["reasoning_effort"] in _THINKING_BUDGETS
    ):
        budget = _THINKING_BUDGETS[body["reasoning_effort"]]
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        out["max_tokens"] = max(out["max_tokens"], budget + 1024)
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("Anthropic answers one choice per request; n must be 1", param="n")
    if body.get("stream") is True:
        out["stream"] = True
    return out


# ---------------------------------------------------------------- answers
def translate_usage(usage: dict[str, Any]) -> Usage:
    return usage_from_cache_split(
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(usage.get("cache_read_input_tokens") or 0),
        int(usage.get("cache_creation_input_tokens") or 0),
    )


def translate_response(data: dict[str, Any]) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    sealed: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind in _THINKING_BLOCKS:
            thinking.append(block.get("thinking", ""))
            sealed.append(block)
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if any(thinking):
        message["reasoning_content"] = "".join(thinking)
    if sealed:
        message["reasoning_blocks"] = sealed
    finish = FINISH_REASONS.get(data.get("stop_reason") or "", "stop")
    usage = translate_usage(data.get("usage") or {})
    response = make_completion(
        str(data.get("id", "")),
        str(data.get("model", "")),
        int(time.time()),
        message,
        finish,
        usage,
    )
    return dict(response)


class AnthropicStream(SSEDecoder):
    """Anthropic's stream events -> OpenAI chunks, one content block at a time."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # content block index -> tool_calls index
        self.thinking: dict[int, dict[str, Any]] = {}  # block index -> the block, as it grows

    def _chunk(self, delta: ChatMessage, finish: str | None = None) -> dict[str, Any]:
        return dict(make_chunk(self.id, self.model, self.created, delta, finish))

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        event = orjson.loads(data)
        kind = event.get("type", name)
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "input_json_delta":
                index = self.tool_index.get(event.get("index", -1))
                if index is None:
                    return []
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            block = self.thinking.get(event.get("index", -1))
            if dtype == "thinking_delta":
                if block is not None:
                    block["thinking"] += delta.get("thinking", "")
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if dtype == "signature_delta" and block is not None:
                block["signature"] = block.get("signature", "") + delta.get("signature", "")
            return []
        if kind == "content_block_stop":
            # A thinking block is whole (its signature came last): handed on for a next turn.
            done = self.thinking.pop(event.get("index", -1), None)
            if done is not None and (done.get("signature") or done.get("data")):
                return [self._chunk({"reasoning_blocks": [done]})]
            return []
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[event.get("index", index)] = index
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            if block.get("type") in _THINKING_BLOCKS:
                start = {"thinking": "", **block} if block["type"] == "thinking" else block
                self.thinking[event.get("index", -1)] = dict(start)
            return []
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id", ""))
            self.model = str(message.get("model") or self.model)
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self.usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            )
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(reason or "", "stop"))]
        if kind == "message_stop":
            self.finished = True
            usage = translate_usage(self.usage)
            return [dict(make_usage_chunk(self.id, self.model, self.created, usage))]
        if kind == "error":
            raise stream_error(event.get("error") or {})
        return []  # ping, and event types added later


def stream_error(error: dict[str, Any]) -> GatewayError:
    message = f"Anthropic: {error.get('message', 'error in stream')}"
    if error.get("type") == "overloaded_error":
        from sluicegate.errors import NoHealthyUpstream

        return NoHealthyUpstream(message, code="upstream_overloaded")
    return UpstreamError(message, code=str(error.get("type") or "api_error"))


class AnthropicAdapter(Adapter):
    name: ClassVar[str] = "anthropic"
    passthrough_dialect: ClassVar[str | None] = "anthropic"
    endpoints: frozenset[str] = frozenset({"chat", "count_tokens"})

    def __init__(self, betas: Iterable[str] = ()) -> None:
        # The anthropic-beta names a client may turn on (globs): a beta is a feature
        # Anthropic runs as the gateway's organisation (its Files API, MCP connections,
        # code execution), so none passes unless the service lists it.
        self.betas = tuple(betas)

    @classmethod
    def for_service(cls, service: Service) -> AnthropicAdapter:
        return cls(service.anthropic_betas)

    def forwarded(self, headers: dict[str, str]) -> dict[str, str]:
        asked = headers.get("anthropic-beta")
        if asked is None:
            return headers
        out = {name: value for name, value in headers.items() if name != "anthropic-beta"}
        names = [name.strip() for name in asked.split(",")]
        allowed = [n for n in names if n and any(fnmatchcase(n, b) for b in self.betas)]
        if allowed:
            out["anthropic-beta"] = ",".join(allowed)
        return out

    def build(
        self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, model: str, base_url: str
    ) -> UpstreamRequest:
        if raw:
            data, stream = raw, body.get("stream") is True
        elif endpoint == "count_tokens":  # another dialect's request, counted (Responses)
            payload = translate_request(body, model)
            counted = {k: v for k, v in payload.items() if k in _COUNTED}
            data, stream = orjson.dumps(counted), False
        else:
            payload = translate_request(body, model)
            data, stream = orjson.dumps(payload), payload.get("stream") is True
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            "accept": "text/event-stream" if stream else "application/json",
        }
        path = "/messages/count_tokens" if endpoint == "count_tokens" else "/messages"
        return UpstreamRequest("POST", base_url + path, headers, data, stream)

    def decode(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data = orjson.loads(body)
        if endpoint == "count_tokens":
            return {"input_tokens": int(data["input_tokens"]), "model": model}
        return translate_response(data)

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        return AnthropicStream(model)

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        error = super().error(status, headers, body)
        if (
            isinstance(error, UpstreamStatusError)
            and status == 400
            and "prompt is too long" in error.message
        ):
            error.code = "context_length_exceeded"
        return error
