"""Which adapter serves each ``provider:`` value.

OpenAI-compatible providers are data: a row here, no code. Providers whose
adapters land later are listed as ``None`` so that configs naming them load
(with a warning) and their requests fail clearly instead of at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.providers.anthropic import AnthropicAdapter
from sluicegate.providers.base import Adapter
from sluicegate.providers.openai import OpenAIAdapter


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    adapter: type[Adapter] | None
    default_path: str = "/v1"


PROVIDERS: dict[str, ProviderSpec] = {
    "openai": ProviderSpec(OpenAIAdapter),
    "openai-compatible": ProviderSpec(OpenAIAdapter),
    "mistral": ProviderSpec(OpenAIAdapter),
    "mock": ProviderSpec(OpenAIAdapter),
    "azure": ProviderSpec(None, "/openai"),
    "anthropic": ProviderSpec(AnthropicAdapter),
    "bedrock": ProviderSpec(None, ""),
    "gemini": ProviderSpec(None, "/v1beta"),
    "vertex": ProviderSpec(None, "/v1"),
    "cohere": ProviderSpec(None, "/v2"),
}
