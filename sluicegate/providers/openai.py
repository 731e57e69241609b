"""OpenAI's API, and every server that speaks it (vLLM, llama.cpp, Ollama, Mistral, ...).

A stream's usage is always asked for (``stream_options.include_usage``), whatever the
client asked: the audit log, the metrics, limits and budgets need the provider's own
count. Providers that report it unasked and refuse the field (the catalog's
``stream_usage: always``, Mistral) are sent no ``stream_options`` at all. What the
client did not ask for is taken out of its stream again (``openai_stream``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from sluicegate.errors import UpstreamError
from sluicegate.providers import openai_responses as responses_api
from sluicegate.providers.base import (
    Adapter,
    Endpoint,
    EventEdits,
    SSEDecoder,
    StreamDecoder,
    UpstreamRequest,
)
from sluicegate.providers.catalog import CATALOG
from sluicegate.providers.openai_stream import OpenAIEventEdits, ToolCallDeltas, wants_usage

if TYPE_CHECKING:
    from sluicegate.config.model import Service

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
# OpenAI's own Responses API: only OpenAI and Azure have it (client of the Responses dialect).
RESPONSES_PATHS = {"responses": "/responses", "input_tokens": "/responses/input_tokens"}
_STREAMED = frozenset({"chat", "completions"})
_JSON = "application/json"
# Canonical fields that other dialects carry and OpenAI's API would refuse.
EXTENSIONS = frozenset({"thinking", "top_k"})
# Providers whose streams are OpenAI's own, relayed as they come: the rest of the
# family get their tool-call deltas put in OpenAI's shape (openai_stream.py).
_OPENAIS_OWN = frozenset({"openai", "azure"})
_KEEP: Any = object()  # the client's stream_options go as they are


class OpenAIAdapter(Adapter):
    name: ClassVar[str] = "openai"
    passthrough_dialect: ClassVar[str | None] = "openai"
    endpoints: frozenset[str] = frozenset(_PATHS)

    def __init__(self, provider: str = "openai", api: str = "chat") -> None:
        info = CATALOG.get(provider)
        self.provider = provider
        self.asks_usage = info is None or info.stream_usage == "ask"
        self.compatible = provider not in _OPENAIS_OWN
        # ``api: responses``: chat requests go to the Responses API (openai_responses).
        self.responses_api = api == "responses" and not self.compatible
        if not self.compatible:
            self.endpoints = self.endpoints | RESPONSES_PATHS.keys()

    def speaks(self, dialect: str) -> bool:
        if dialect == "responses":
            return not self.compatible
        return dialect == "openai" and not self.responses_api

    def wire(self, endpoint: Endpoint) -> Endpoint:
        """The provider's endpoint that serves ``endpoint``."""
        return "responses" if endpoint == "chat" and self.responses_api else endpoint

    @classmethod
    def for_service(cls, service: Service) -> OpenAIAdapter:
        return cls(service.provider, service.api)

    def build(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
    ) -> UpstreamRequest:
        stream = body.get("stream") is True
        if self.wire(endpoint) != endpoint:
            data = orjson.dumps(responses_api.to_request(body, model))
            headers = {"content-type": _JSON, "accept": "text/event-stream" if stream else _JSON}
            return UpstreamRequest("POST", base_url + self.path("responses"), headers, data, stream)
        options = self._stream_options(body) if stream and endpoint in _STREAMED else _KEEP
        if raw and options is _KEEP:
            data = raw  # an OpenAI client's own bytes
        else:
            # An OpenAI client's body is its canonical one: edited, it is sent without a
            # second parse. Other dialects' extensions are dropped.
            source = body if raw else {k: v for k, v in body.items() if k not in EXTENSIONS}
            payload = {**source, "model": model}
            if not raw and any("reasoning_blocks" in m for m in body.get("messages") or ()):
                payload["messages"] = [_without_blocks(m) for m in body["messages"]]
            if options is None:
                payload.pop("stream_options", None)
            elif options is not _KEEP:
                payload["stream_options"] = options
            data = orjson.dumps(payload)
        headers = {"content-type": _JSON, "accept": "text/event-stream" if stream else _JSON}
        return UpstreamRequest("POST", base_url + self.path(endpoint), headers, data, stream)

    @staticmethod
    def path(endpoint: Endpoint) -> str:
        return _PATHS.get(endpoint) or RESPONSES_PATHS[endpoint]

    def _stream_options(self, body: dict[str, Any]) -> Any:
        """The ``stream_options`` to send: the client's (``_KEEP``), with usage asked for,
        or None (none at all, for a provider that reports usage unasked)."""
        options = body.get("stream_options")
        if not self.asks_usage:
            return _KEEP if options is None else None
        if wants_usage(body):
            return _KEEP
        return {**(options if isinstance(options, dict) else {}), "include_usage": True}

    def decode(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the provider's answer is not a JSON object")
        if self.wire(endpoint) != endpoint:
            return responses_api.to_completion(data, model)
        return data

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        # Also OpenAI's own Responses stream that output guardrails must read as chunks.
        if endpoint == "responses" or self.wire(endpoint) != endpoint:
            return responses_api.ResponsesEvents(model)
        return OpenAIStream(ToolCallDeltas() if self.compatible else None)

    def passthrough_edits(self, endpoint: Endpoint, body: dict[str, Any]) -> EventEdits | None:
        if endpoint in RESPONSES_PATHS:
            return None  # the Responses API's events are relayed as they come
        hide_usage = not wants_usage(body)
        tool_calls = ToolCallDeltas() if self.compatible and body.get("tools") else None
        if not hide_usage and tool_calls is None:
            return None
        return OpenAIEventEdits(hide_usage, tool_calls)


def _without_blocks(message: dict[str, Any]) -> dict[str, Any]:
    """Another provider's reasoning blocks are for that provider only."""
    if "reasoning_blocks" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reasoning_blocks"}


class OpenAIStream(SSEDecoder):
    """OpenAI's own stream read into canonical chunks (for clients of another dialect)."""

    def __init__(self, tool_calls: ToolCallDeltas | None = None) -> None:
        super().__init__()
        self.tool_calls = tool_calls  # an OpenAI-compatible server's repeats, taken out

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        if data == b"[DONE]":
            self.finished = True
            return []
        chunk = orjson.loads(data)
        if "error" in chunk:
            error = (
                chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
            )
            raise UpstreamError(
                str(error.get("message", "error in stream")), code=error.get("code")
            )
        if self.tool_calls is not None:
            self.tool_calls.repair(chunk)
        return [chunk]
