"""The OpenAI client dialect: parse and check a request body once.

Checks are deliberately shallow (types of the fields the gateway and the
common providers rely on) and name the offending field in ``param``, the way
OpenAI's own API does. The body stays a plain dict; unknown fields pass on.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from sluicegate.dialects.base import Parsed
from sluicegate.errors import GatewayError, InvalidRequest
from sluicegate.schema.sse import DONE, encode_data

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Optional fields the gateway type-checks: name -> (accepted types, description).
_NUMBER = (int, float)
_PARAM_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "stream": ((bool,), "a boolean"),
    "stream_options": ((dict,), "an object"),
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "presence_penalty": (_NUMBER, "a number"),
    "frequency_penalty": (_NUMBER, "a number"),
    "stop": ((str, list), "a string or an array of strings"),
    "tools": ((list,), "an array"),
    "user": ((str,), "a string"),
    "seed": ((int,), "an integer"),
}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _check_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model must be a non-empty string", param="model")
    return model


def _check_params(body: dict[str, Any]) -> None:
    for name, (types, what) in _PARAM_TYPES.items():
        value = body.get(name)
        if value is None:
            continue
        # bool is an int in Python; a JSON true is never a valid number here.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InvalidRequest(f"{name} must be {what}", param=name)


def check_chat(body: dict[str, Any]) -> str:
    """Check a chat-completions body; return its model."""
    model = _check_model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("you must provide a messages parameter", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}",
                param=f"messages[{i}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"messages[{i}].content must be a string or an array of content parts",
                param=f"messages[{i}].content",
            )
    _check_params(body)
    return model


def check_completion(body: dict[str, Any]) -> str:
    model = _check_model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("you must provide a prompt parameter", param="prompt")
    if not isinstance(prompt, str | list):
        raise InvalidRequest("prompt must be a string or an array", param="prompt")
    _check_params(body)
    return model


def check_embedding(body: dict[str, Any]) -> str:
    model = _check_model(body)
    value = body.get("input")
    if value is None:
        raise InvalidRequest("you must provide an input parameter", param="input")
    if not isinstance(value, str | list) or value == [] or value == "":
        raise InvalidRequest("input must be a non-empty string or array", param="input")
    return model


CHECKS = {"chat": check_chat, "completions": check_completion, "embeddings": check_embedding}


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message (what the mock provider echoes)."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


# A provider's refusal (Anthropic's stop reason "refusal", a safety stop) reaches OpenAI
# clients as OpenAI reports one: in ``refusal``, which the SDKs check, beside the text.
DECLINED = "The provider declined to answer."


def fill_refusals(completion: dict[str, Any]) -> None:
    for choice in completion.get("choices") or ():
        message = choice.get("message")
        refused = choice.get("finish_reason") == "content_filter"
        if refused and isinstance(message, dict) and not message.get("refusal"):
            message["refusal"] = content_text(message.get("content")) or DECLINED


class OpenAIStreamEncoder:
    """Canonical chunks are OpenAI chunks: only the usage is optional. A client that did not
    ask for it (``include_usage``) gets none, though the gateway asked the provider: not
    the usage chunk, nor a usage riding on another chunk (Mistral's last one)."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._text: dict[int, list[str]] = {}  # by choice: the text, in case it is a refusal

    def encode(self, chunks: list[dict[str, Any]]) -> bytes:
        if not self.include_usage:
            chunks = [c for c in chunks if c.get("choices")]
            for chunk in chunks:
                chunk.pop("usage", None)  # read already: the relay took it before encoding
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                self._note(choice)
        return b"".join(encode_data(c) for c in chunks)

    def _note(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        index = choice.get("index", 0)
        if isinstance(text, str) and text:
            self._text.setdefault(index, []).append(text)
        if choice.get("finish_reason") == "content_filter" and not delta.get("refusal"):
            choice["delta"] = {**delta, "refusal": "".join(self._text.get(index, ())) or DECLINED}

    def close(self) -> bytes:
        return DONE

    def error(self, error: GatewayError) -> bytes:
        return encode_data(error.openai_body())


class OpenAIDialect:
    name = "openai"
    native_endpoints: Mapping[str, str] = MappingProxyType({})
    forward_headers: tuple[bytes, ...] = ()

    def parse(self, endpoint: str, raw: bytes) -> Parsed:
        body = parse_json_object(raw)
        return Parsed(body, CHECKS[endpoint](body), body)

    def encode_response(self, endpoint: str, canonical: dict[str, Any]) -> bytes:
        if endpoint == "chat":
            fill_refusals(canonical)
        return orjson.dumps(canonical)

    def stream_encoder(self, canonical: dict[str, Any], model: str) -> OpenAIStreamEncoder:
        include_usage = bool((canonical.get("stream_options") or {}).get("include_usage"))
        return OpenAIStreamEncoder(include_usage)

    def stream_done(self, event: bytes) -> bool:
        # An error event also ends the stream: nothing may follow it.
        return event == DONE or event.startswith(b'data: {"error"')

    def error_event(self, error: GatewayError) -> bytes:
        return encode_data(error.openai_body())
