"""Cohere's Chat v2 API <-> the canonical (OpenAI) form (embeddings: ``cohere_embed``).

Requests map closely: the roles are the same, tool calls have OpenAI's shape,
images are ``image_url`` parts. What differs: ``top_p``/``top_k`` are ``p``/``k``,
``tool_choice`` knows only REQUIRED and NONE (a forced function is sent as
the only tool, with REQUIRED), and JSON mode is ``json_object`` with an
optional schema. Answers carry no model name, so the one the gateway asked
for is reported in streams and left empty in whole answers.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from sluicegate.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamStatusError
from sluicegate.providers.base import Adapter, Endpoint, SSEDecoder, StreamDecoder, UpstreamRequest
from sluicegate.providers.cohere_embed import translate_embeddings, translate_embeddings_request
from sluicegate.providers.common import EMPTY_SCHEMA, function_tools
from sluicegate.schema.chat import (
    ChatMessage,
    Usage,
    make_chunk,
    make_completion,
    make_usage,
    make_usage_chunk,
)

if TYPE_CHECKING:
    from sluicegate.config.model import Service

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    # The generation ran out of time: the answer is cut short, as with a token limit.
    "TIMEOUT": "length",
    "ERROR_TOXIC": "content_filter",
}
_FAILED = frozenset({"ERROR"})
_THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
_CONTEXT_LENGTH = re.compile(r"too many tokens|context length|context window", re.I)
_JSON = "application/json"


# ---------------------------------------------------------------- requests
def _text_blocks(content: Any, where: str) -> str | list[dict[str, Any]]:
    """System and assistant content: text only."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise InvalidRequest(
                f"{here}: content parts of type {kind!r} are not supported here by Cohere",
                param=here,
            )
        blocks.append({"type": "text", "text": str(part.get("text", ""))})
    return blocks


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    f"{here}.image_url.url must be a URL or a data: URL", param=here
                )
            entry: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and image.get("detail") in ("auto", "low", "high"):
                entry["detail"] = image["detail"]
            blocks.append({"type": "image_url", "image_url": entry})
        else:
            raise InvalidRequest(
                f"{here}: content parts of type {kind!r} are not supported by Cohere", param=here
            )
    return blocks


def _tool_calls(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    out = []
    for i, call in enumerate(calls):
        here = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise InvalidRequest(f"{here} needs an id and a function", param=here)
        arguments = function.get("arguments")
        if arguments is None:
            arguments = "{}"
        elif isinstance(arguments, str):
            try:
                orjson.loads(arguments)
            except orjson.JSONDecodeError:
                raise InvalidRequest(
                    f"{here}.function.arguments is not valid JSON",
                    param=f"{here}.function.arguments",
                ) from None
        else:
            arguments = orjson.dumps(arguments).decode()
        out.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": str(function.get("name", "")), "arguments": arguments},
            }
        )
    return out


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_id = message.get("tool_call_id") or message.get("name")
    if not isinstance(tool_id, str):
        raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    return {
        "role": "tool",
        "tool_call_id": tool_id,
        "content": _text_blocks(message.get("content"), f"{where}.content"),
    }


def translate_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_blocks(content, f"{where}.content")})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(content, f"{where}.content")})
        elif role == "assistant":
            entry: dict[str, Any] = {"role": "assistant"}
            text = _text_blocks(content, f"{where}.content")
            if text:
                entry["content"] = text
            calls = _tool_calls(message, where)
            if calls:
                entry["tool_calls"] = calls
            if len(entry) > 1:  # Cohere refuses an assistant turn with nothing in it
                out.append(entry)
        elif role in ("tool", "function"):
            out.append(_tool_result(message, where))
        else:
            raise InvalidRequest(f"{where}.role {role!r} is not supported", param=f"{where}.role")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters or EMPTY_SCHEMA}
        if tool.description:
            entry["description"] = tool.description
        out.append({"type": "function", "function": entry})
    return out


def _apply_tool_choice(out: dict[str, Any], choice: Any) -> None:
    if choice is None or choice == "auto":
        return
    if choice == "required":
        out["tool_choice"] = "REQUIRED"
    elif choice == "none":
        out["tool_choice"] = "NONE"
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        # Cohere cannot name a tool; offering only that one and requiring a call does it.
        name = choice["function"].get("name")
        chosen = [t for t in out["tools"] if t["function"]["name"] == name]
        if not chosen:
            raise InvalidRequest(
                f"tool_choice names {name!r}, which is not in tools", param="tool_choice"
            )
        out["tools"] = chosen
        out["tool_choice"] = "REQUIRED"
    else:
        raise InvalidRequest(
            "tool_choice is not one of auto, required, none or a function", param="tool_choice"
        )


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    raise InvalidRequest(
        "response_format.type must be text, json_object or json_schema", param="response_format"
    )


def translate_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": model,
        "messages": translate_messages(body["messages"]),
        "stream": body.get("stream") is True,
    }
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("Cohere answers one choice per request; n must be 1", param="n")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    renames = {
        "temperature": "temperature",
        "top_p": "p",
        "seed": "seed",
        "frequency_penalty": "frequency_penalty",
        "presence_penalty": "presence_penalty",
    }
    for ours, theirs in renames.items():
        if body.get(ours) is not None:
            out[theirs] = body[ours]
    if isinstance(body.get("top_k"), int):
        out["k"] = body["top_k"]
    stop = body.get("stop")
    if stop:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("stop must be a string or an array of strings", param="stop")
        out["stop_sequences"] = stops
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        if any(
            isinstance(t, dict) and (t.get("function") or {}).get("strict") is True
            for t in body["tools"]
        ):
            out["strict_tools"] = True
        _apply_tool_choice(out, body.get("tool_choice"))
    response_format = _response_format(body.get("response_format"))
    if response_format is not None:
        out["response_format"] = response_format
    effort = body.get("reasoning_effort")
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
    elif isinstance(effort, str) and effort in _THINKING_BUDGETS:
        out["thinking"] = {"type": "enabled", "token_budget": _THINKING_BUDGETS[effort]}
    return out


# ---------------------------------------------------------------- answers
def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def translate_usage(usage: dict[str, Any]) -> Usage:
    # ``tokens`` counts what the model processed; ``billed_units`` what was
    # billed (fewer on input). OpenAI's usage means the former.
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    cached = usage.get("cached_tokens")
    return make_usage(
        _count(tokens.get("input_tokens")),
        _count(tokens.get("output_tokens")),
        cached=_count(cached) if cached is not None else None,
    )


def _finish(reason: Any) -> str:
    if str(reason) in _FAILED:
        raise ValueError("Cohere reported that the generation failed")
    return FINISH_REASONS.get(str(reason), "stop")


def translate_response(data: dict[str, Any], model: str = "") -> dict[str, Any]:
    message = data.get("message") or {}
    texts: list[str] = []
    reasoning: list[str] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
    if message.get("tool_plan"):
        reasoning.append(str(message["tool_plan"]))
    tool_calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        tool_calls.append(
            {
                "id": str(call.get("id", "")),
                "type": "function",
                "function": {
                    "name": str(function.get("name", "")),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments or {}).decode(),
                },
            }
        )
    out: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        out["tool_calls"] = tool_calls
    if reasoning:
        out["reasoning_content"] = "".join(reasoning)
    response = make_completion(
        str(data.get("id", "")),
        model,
        int(time.time()),
        out,
        _finish(data.get("finish_reason")),
        translate_usage(data.get("usage") or {}),
    )
    return dict(response)


class CohereStream(SSEDecoder):
    """Cohere's stream events -> OpenAI chunks.

    Text and thinking arrive as content blocks; tool calls as
    ``tool-call-start``/``-delta``/``-end`` runs, one per call, whose ``index``
    is mapped onto OpenAI's tool_calls index; ``message-end`` carries the
    finish reason and the usage (or an error).
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.tool_index: dict[int, int] = {}  # Cohere's event index -> tool_calls index

    def _chunk(self, delta: ChatMessage, finish: str | None = None) -> dict[str, Any]:
        return dict(make_chunk(self.id, self.model, self.created, delta, finish))

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        if data == b"[DONE]" or self.finished:
            return []
        event = orjson.loads(data)
        kind = event.get("type") or name
        delta = event.get("delta") or {}
        message = delta.get("message") or {}
        if kind in ("content-delta", "content-start"):
            content = message.get("content") or {}
            if content.get("text"):
                return [self._chunk({"content": content["text"]})]
            if content.get("thinking"):
                return [self._chunk({"reasoning_content": content["thinking"]})]
            return []
        if kind == "tool-call-delta":
            index = self.tool_index.get(event.get("index", -1))
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if index is None or not arguments:
                return []
            call = {"index": index, "function": {"arguments": arguments}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "tool-call-start":
            index = len(self.tool_index)
            self.tool_index[event.get("index", index)] = index
            start = message.get("tool_calls") or {}
            function = start.get("function") or {}
            call = {
                "index": index,
                "id": str(start.get("id", "")),
                "type": "function",
                "function": {
                    "name": str(function.get("name", "")),
                    "arguments": str(function.get("arguments") or ""),
                },
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "tool-plan-delta":
            plan = message.get("tool_plan")
            return [self._chunk({"reasoning_content": plan})] if plan else []
        if kind == "message-start":
            self.id = str(event.get("id") or self.id)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message-end":
            reason = delta.get("finish_reason")
            if str(reason) in _FAILED or delta.get("error"):
                raise stream_error(delta)
            self.finished = True
            usage = translate_usage(delta.get("usage") or {})
            return [
                self._chunk({}, _finish(reason)),
                dict(make_usage_chunk(self.id, self.model, self.created, usage)),
            ]
        return []  # content-end, tool-call-end, citation-*, debug, and later event types


def stream_error(delta: dict[str, Any]) -> GatewayError:
    return UpstreamError(f"Cohere: {delta.get('error') or 'the generation failed'}")


class CohereAdapter(Adapter):
    name: ClassVar[str] = "cohere"
    endpoints: frozenset[str] = frozenset({"chat", "embeddings"})

    def __init__(self, service_name: str = "cohere") -> None:
        self.service_name = service_name

    @classmethod
    def for_service(cls, service: Service) -> CohereAdapter:
        return cls(service.name)

    def build(
        self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, model: str, base_url: str
    ) -> UpstreamRequest:
        if endpoint == "embeddings":
            payload = translate_embeddings_request(body, model)
            headers = {"content-type": _JSON, "accept": _JSON}
            return UpstreamRequest("POST", base_url + "/embed", headers, orjson.dumps(payload))
        payload = translate_request(body, model)
        stream = payload["stream"] is True
        headers = {"content-type": _JSON, "accept": "text/event-stream" if stream else _JSON}
        return UpstreamRequest("POST", base_url + "/chat", headers, orjson.dumps(payload), stream)

    def decode(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("Cohere's answer is not a JSON object")
        if endpoint == "embeddings":
            return translate_embeddings(data)
        return translate_response(data)

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        return CohereStream(model)

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        if status == 498:  # Cohere's "invalid token": the gateway's key, not the client's fault
            return UpstreamError(
                f"service '{self.service_name}' refused the gateway's credentials (status 498)",
                code="upstream_auth_failed",
            )
        error = super().error(status, headers, body)
        if (
            isinstance(error, UpstreamStatusError)
            and status == 400
            and _CONTEXT_LENGTH.search(error.message)
        ):
            error.code = "context_length_exceeded"
        return error
