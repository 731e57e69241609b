"""Cohere's Embed v2 API <-> OpenAI's embeddings.

Cohere embeds text only (no token arrays) and wants an ``input_type``:
``search_document`` unless the client names another. Its answers carry no
model name, so the ``model`` of the translated answer is left empty.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from sluicegate.errors import InvalidRequest

_EMBED_INPUT_TYPES = frozenset(
    {"search_document", "search_query", "classification", "clustering", "image"}
)


def translate_embeddings_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    texts = body["input"]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "Cohere embeds text: input must be a string or an array of strings", param="input"
        )
    input_type = body.get("input_type", "search_document")
    if not isinstance(input_type, str) or input_type not in _EMBED_INPUT_TYPES:
        raise InvalidRequest(
            f"input_type must be one of {', '.join(sorted(_EMBED_INPUT_TYPES))}",
            param="input_type",
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
    # The floats are always asked for; adding "base64" is how the answer tells
    # ``decode`` that the client wants OpenAI's base64 (which it encodes itself).
    types = ["float"] if encoding == "float" else ["float", "base64"]
    out: dict[str, Any] = {
        "model": model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": types,
    }
    if isinstance(body.get("dimensions"), int):
        out["output_dimension"] = body["dimensions"]
    return out


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def encode_embedding(vector: list[float]) -> str:
    """OpenAI's base64 embedding: little-endian float32s, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def translate_embeddings(data: dict[str, Any], model: str = "") -> dict[str, Any]:
    embeddings = data["embeddings"]
    as_base64 = False
    if isinstance(embeddings, dict):
        as_base64 = "base64" in embeddings
        vectors = embeddings["float"]
    else:
        vectors = embeddings  # the older "embeddings_floats" answer: a bare list
    items = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_embedding(vector) if as_base64 else vector,
        }
        for i, vector in enumerate(vectors)
    ]
    billed = (data.get("meta") or {}).get("billed_units") or {}
    tokens = _count(billed.get("input_tokens"))
    return {
        "object": "list",
        "data": items,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
