"""Which adapter serves each ``provider:`` value.

Providers whose adapters have not landed yet map to ``None``: configs naming
them load (with a warning) and their requests fail clearly, never at start-up.
"""

from __future__ import annotations

from sluicegate.providers.anthropic import AnthropicAdapter
from sluicegate.providers.azure import AzureAdapter
from sluicegate.providers.base import Adapter
from sluicegate.providers.bedrock import BedrockAdapter
from sluicegate.providers.catalog import CATALOG
from sluicegate.providers.cohere import CohereAdapter
from sluicegate.providers.gemini import GeminiAdapter, VertexAdapter
from sluicegate.providers.openai import OpenAIAdapter

_OWN: dict[str, type[Adapter] | None] = {
    "anthropic": AnthropicAdapter,
    "azure": AzureAdapter,
    "bedrock": BedrockAdapter,
    "gemini": GeminiAdapter,
    "vertex": VertexAdapter,
    "cohere": CohereAdapter,
}

# Everything else in the catalog speaks OpenAI's API.
ADAPTERS: dict[str, type[Adapter] | None] = {
    name: _OWN.get(name, OpenAIAdapter) for name in CATALOG
}
