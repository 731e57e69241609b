"""OpenAI's API, and every server that speaks it (vLLM, llama.cpp, Ollama, Mistral, ...)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from sluicegate.providers.base import Adapter, Endpoint, UpstreamRequest

_PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_JSON = "application/json"


class OpenAIAdapter(Adapter):
    name: ClassVar[str] = "openai"
    openai_wire: ClassVar[bool] = True
    default_path: ClassVar[str] = "/v1"
    endpoints: ClassVar[frozenset[str]] = frozenset(_PATHS)

    def build(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
    ) -> UpstreamRequest:
        # The client's bytes go on untouched unless the rule renamed the model.
        data = raw if body.get("model") == model else orjson.dumps({**body, "model": model})
        stream = body.get("stream") is True
        headers = {"content-type": _JSON, "accept": "text/event-stream" if stream else _JSON}
        return UpstreamRequest("POST", base_url + _PATHS[endpoint], headers, data, stream)

    def decode(self, endpoint: Endpoint, body: bytes) -> dict[str, Any]:
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the provider's answer is not a JSON object")
        return data
