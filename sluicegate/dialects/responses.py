"""The Responses client dialect: ``/v1/responses`` in front of any provider.

A request becomes a canonical (OpenAI chat) body: ``instructions`` a system message,
the stored items of the turns before it (``previous_response_id``, read by
``responses.api`` before the request is parsed) and its own ``input`` items messages,
its tools and options their chat equivalents. A canonical answer becomes a
``response`` object whose id is the gateway's own; a stream becomes the Responses
semantic events (``responses_stream``).

One dialect object serves one request: it holds what the answer must echo (the
request's options, the response id) and, once written, the final response, which
``responses.api`` keeps before the client may see it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from sluicegate.dialects.base import Parsed
from sluicegate.dialects.openai import parse_json_object
from sluicegate.dialects.responses_items import (
    CLIENT_TOOLS,
    chat_tool_choice,
    chat_tools,
    check_tool_choice,
    custom_tools,
    input_items,
    native_history,
    new_id,
    response_format,
    to_messages,
)
from sluicegate.dialects.responses_objects import (
    failed_event,
    finish,
    output_of,
    shell,
    to_usage,
)
from sluicegate.dialects.responses_stream import ResponsesStreamEncoder
from sluicegate.errors import GatewayError, InvalidRequest

_NUMBERS = ("temperature", "top_p")


# ---------------------------------------------------------------- requests
def to_canonical(
    body: dict[str, Any], history: list[dict[str, Any]], items: list[dict[str, Any]]
) -> dict[str, Any]:
    """The canonical chat request for a Responses ``body`` whose ``input`` became ``items``,
    after the ``history`` of the turns before it (their input and output items)."""
    for name, (kind, what) in _TYPES.items():
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            raise InvalidRequest(f"{name} must be {what}", param=name)
    check_metadata(body.get("metadata"))
    check_tool_choice(body.get("tool_choice"), body.get("tools"))
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("instructions must be a string", param="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    messages += to_messages(history, "previous_response")
    messages += to_messages(items)
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("input is required", param="input")
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidRequest(
                "max_output_tokens must be a positive integer", param="max_output_tokens"
            )
        out["max_completion_tokens"] = limit
    for name in _NUMBERS:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidRequest(f"{name} must be a number", param=name)
            out[name] = value
    # Built-in tools are not the provider's to see: only OpenAI runs them (builtin_tools).
    tools = [
        t
        for t in body.get("tools") or []
        if not isinstance(t, dict) or t.get("type") in CLIENT_TOOLS
    ]
    if tools:
        out["tools"] = chat_tools(tools)
        if body.get("tool_choice") is not None:
            out["tool_choice"] = chat_tool_choice(body["tool_choice"])
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = response_format(body.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") not in (None, "none"):
        out["reasoning_effort"] = reasoning["effort"]
    if isinstance(body.get("user"), str):
        out["user"] = body["user"]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# Optional fields the gateway type-checks: name -> (accepted type, description).
_TYPES: dict[str, tuple[type, str]] = {
    "stream": (bool, "a boolean"),
    "store": (bool, "a boolean"),
    "tools": (list, "an array"),
    "metadata": (dict, "an object"),
    "reasoning": (dict, "an object"),
    "user": (str, "a string"),
    "include": (list, "an array"),
    "parallel_tool_calls": (bool, "a boolean"),
}


# OpenAI's limits on metadata: it is echoed on the response and may be routed on.
METADATA_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512


def check_metadata(metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > METADATA_KEYS:
        raise InvalidRequest(f"metadata may hold at most {METADATA_KEYS} keys", param="metadata")
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_CHARS:
            raise InvalidRequest(
                f"metadata keys may be at most {METADATA_KEY_CHARS} characters long",
                param="metadata",
            )
        if not isinstance(value, str) or len(value) > METADATA_VALUE_CHARS:
            raise InvalidRequest(
                f"metadata values must be strings of at most {METADATA_VALUE_CHARS} characters",
                param="metadata",
            )


# ---------------------------------------------------------------- the dialect
class ResponsesDialect:
    """One request's dialect (see the module's docstring)."""

    name = "responses"
    native_endpoints: Mapping[str, str] = MappingProxyType({"chat": "responses"})
    forward_headers: tuple[bytes, ...] = ()

    def __init__(self, history: list[dict[str, Any]] | None = None) -> None:
        self.history = history or []
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.body: dict[str, Any] = {}
        self.items: list[dict[str, Any]] = []  # this turn's input, with ids
        self.final: dict[str, Any] | None = None  # the response as the client gets it
        self.translated = False  # the answer is the gateway's translation, not OpenAI's own
        self.encoded = b""  # a whole translated answer's JSON, as guardrails(out) left it
        self.sequence = 0  # a native stream's next sequence_number (responses.native)
        self._read: tuple[bytes, dict[str, Any]] | None = None

    def read(self, raw: bytes) -> dict[str, Any]:
        """The body as JSON, read once: ``parse`` uses it for the same bytes."""
        body = parse_json_object(raw)
        self._read = (raw, body)
        return body

    def parse(self, endpoint: str, raw: bytes) -> Parsed:
        body = self._read[1] if self._read and self._read[0] is raw else parse_json_object(raw)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model must be a non-empty string", param="model")
        if body.get("background") is True:
            raise InvalidRequest(
                "background responses are not supported by this gateway", param="background"
            )
        self.body = body
        self.items = input_items(body.get("input", []))
        canonical = to_canonical(body, self.history, self.items)
        if body.get("previous_response_id") is None:
            return Parsed(canonical, model, body)
        # OpenAI's own API gets the whole conversation: it knows none of the gateway's ids.
        wire = {k: v for k, v in body.items() if k != "previous_response_id"}
        given = body.get("input", [])
        if isinstance(given, str):
            given = [{"role": "user", "content": given}]
        wire["input"] = [*native_history(self.history), *given]
        return Parsed(canonical, model, body, wire)

    def shell(self, model: str) -> dict[str, Any]:
        return shell(self.body, self.id, self.created_at, model)

    def encode_response(self, endpoint: str, canonical: dict[str, Any]) -> bytes:
        self.translated = True
        if endpoint == "count_tokens":  # a provider's count of the input (input_tokens)
            tokens = canonical.get("input_tokens")
            return orjson.dumps({"object": "response.input_tokens", "input_tokens": tokens})
        choice = (canonical.get("choices") or [{}])[0]
        response = self.shell(str(canonical.get("model") or self.body.get("model", "")))
        response["output"] = output_of(choice.get("message") or {}, custom_tools(self.body))
        response["usage"] = to_usage(canonical.get("usage"))
        self.final = finish(response, choice.get("finish_reason"))
        self.encoded = orjson.dumps(self.final)
        return self.encoded

    def stream_encoder(self, canonical: dict[str, Any], model: str) -> ResponsesStreamEncoder:
        self.translated = True
        return ResponsesStreamEncoder(self.shell(model), custom_tools(self.body), self._done)

    def _done(self, response: dict[str, Any]) -> None:
        self.final = response

    def stream_done(self, event: bytes) -> bool:
        return event.startswith(_LAST_EVENTS)

    def error_event(self, error: GatewayError) -> bytes:
        return failed_event(self.shell(str(self.body.get("model", ""))), error, self.sequence)


_LAST_EVENTS = (
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
    b"event: error",
)
