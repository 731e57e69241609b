"""Every ``provider:`` value and where it lives by default: data, not code.

An OpenAI-compatible provider is one row here (plus the adapter it shares in
``registry``). ``{region}`` and ``{location}`` in a host are filled from the
service's ``credentials.aws_region`` / ``location``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    host: str | None = None  # None: the service must name its host
    path: str = "/v1"
    protocol: str = "https"
    port: int | None = None
    auth: str = "Authorization: Bearer <key>"  # how the provider wants its key, for docs
    # How an OpenAI-speaking provider gives a stream's usage: "ask" (it reports it when
    # sent stream_options.include_usage) or "always" (it reports it unasked and refuses
    # stream_options). The gateway always wants it (docs/observability.md).
    stream_usage: str = "ask"


CATALOG: dict[str, ProviderInfo] = {
    # Providers with their own adapter.
    "openai": ProviderInfo("api.openai.com"),
    "azure": ProviderInfo(None, "/openai", auth="api-key: <key>, or Entra ID"),
    "anthropic": ProviderInfo("api.anthropic.com", auth="x-api-key: <key>"),
    "bedrock": ProviderInfo("bedrock-runtime.{region}.amazonaws.com", "", auth="AWS SigV4"),
    "gemini": ProviderInfo(
        "generativelanguage.googleapis.com", "/v1beta", auth="x-goog-api-key: <key>"
    ),
    "vertex": ProviderInfo(
        "{location}-aiplatform.googleapis.com", "/v1", auth="Google service account"
    ),
    "cohere": ProviderInfo("api.cohere.com", "/v2"),
    "mock": ProviderInfo(None, ""),
    # The OpenAI-compatible family.
    "openai-compatible": ProviderInfo(None),
    "mistral": ProviderInfo("api.mistral.ai", stream_usage="always"),
    "groq": ProviderInfo("api.groq.com", "/openai/v1"),
    "together": ProviderInfo("api.together.xyz"),
    "fireworks": ProviderInfo("api.fireworks.ai", "/inference/v1"),
    "deepseek": ProviderInfo("api.deepseek.com"),
    "openrouter": ProviderInfo("openrouter.ai", "/api/v1"),
    "perplexity": ProviderInfo("api.perplexity.ai", ""),
    "xai": ProviderInfo("api.x.ai"),
    "vllm": ProviderInfo(None),
    # Hugging Face Text Embeddings Inference: OpenAI's embeddings under /v1, its own
    # /rerank at the server's root (media.rerank.TeiRerank).
    "tei": ProviderInfo(None),
    "ollama": ProviderInfo("127.0.0.1", protocol="http", port=11434),
    "llama.cpp": ProviderInfo("127.0.0.1", protocol="http", port=8080),
    "lm-studio": ProviderInfo("127.0.0.1", protocol="http", port=1234),
}
