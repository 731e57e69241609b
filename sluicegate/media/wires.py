"""Which ``Wire`` serves a media endpoint on a service: a table keyed by the service's
adapter class (its nearest listed ancestor: Azure's is OpenAI's, Vertex's Gemini's) and the
endpoint's family. A family a provider lacks is absent, and the request goes to the rule's
next step.
"""

from __future__ import annotations

from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.images_bedrock import BedrockImages
from sluicegate.media.images_gemini import GeminiImages
from sluicegate.media.openai import OpenAIWire
from sluicegate.media.rerank import BedrockRerank, CohereRerank, CompatibleRerank, TeiRerank
from sluicegate.providers.azure import AzureAdapter
from sluicegate.providers.base import Adapter
from sluicegate.providers.bedrock import BedrockAdapter
from sluicegate.providers.cohere import CohereAdapter
from sluicegate.providers.gemini import GeminiAdapter
from sluicegate.providers.openai import OpenAIAdapter

_OPENAI = OpenAIWire()
_GEMINI_IMAGES = GeminiImages()
_OPENAI_FAMILIES = ("images", "transcripts", "speech", "moderations")

# adapter class -> endpoint name or family -> wire; an endpoint's name is looked up first.
WIRES: dict[type[Adapter], dict[str, Wire]] = {
    AzureAdapter: {family: _OPENAI for family in ("images", "transcripts", "speech")},
    OpenAIAdapter: {family: _OPENAI for family in _OPENAI_FAMILIES},
    GeminiAdapter: dict.fromkeys(("images.generations", "images.edits"), _GEMINI_IMAGES),
    BedrockAdapter: {"images": BedrockImages(), "rerank": BedrockRerank()},
    CohereAdapter: {"rerank": CohereRerank()},
}
_COMPATIBLE_RERANK = CompatibleRerank()
# OpenAI-compatible servers whose rerank has a body of its own, by ``provider:``.
_OWN_RERANK: dict[str, Wire] = {"tei": TeiRerank()}


def wire_for(adapter: Adapter | None, endpoint: MediaEndpoint) -> Wire | None:
    if adapter is None:
        return None
    for cls in type(adapter).__mro__:
        table = WIRES.get(cls)
        if table is not None:
            wire = table.get(endpoint.name) or table.get(endpoint.family)
            if wire is None and endpoint.family == "rerank" and isinstance(adapter, OpenAIAdapter):
                # Rerank servers speak OpenAI's API for the rest; OpenAI itself has none.
                if not adapter.compatible:
                    return None
                return _OWN_RERANK.get(adapter.provider, _COMPATIBLE_RERANK)
            return wire
    return None
