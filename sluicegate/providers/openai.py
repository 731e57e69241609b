"""OpenAI's API, and every server that speaks it (vLLM, llama.cpp, Ollama, Mistral, ...)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from sluicegate.errors import UpstreamError
from sluicegate.providers.base import Adapter, Endpoint, SSEDecoder, StreamDecoder, UpstreamRequest

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_JSON = "application/json"
# Canonical fields that other dialects carry and OpenAI's API would refuse.
EXTENSIONS = frozenset({"thinking", "top_k"})


class OpenAIAdapter(Adapter):
    name: ClassVar[str] = "openai"
    passthrough_dialect: ClassVar[str | None] = "openai"
    endpoints: ClassVar[frozenset[str]] = frozenset(_PATHS)

    def build(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
    ) -> UpstreamRequest:
        if raw:
            data = raw  # an OpenAI client's own bytes
        else:
            payload = {k: v for k, v in body.items() if k not in EXTENSIONS}
            payload["model"] = model
            data = orjson.dumps(payload)
        stream = body.get("stream") is True
        headers = {"content-type": _JSON, "accept": "text/event-stream" if stream else _JSON}
        return UpstreamRequest("POST", base_url + _PATHS[endpoint], headers, data, stream)

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
        return data

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        return OpenAIStream()


class OpenAIStream(SSEDecoder):
    """OpenAI's own stream read into canonical chunks (for clients of another dialect)."""

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
        return [chunk]
