"""Embeddings on Bedrock (``InvokeModel``) <-> OpenAI's ``/v1/embeddings``.

Two body families, chosen by model id: Titan text embeddings take one
``inputText`` per call, so a batch cannot go in one request; Cohere embed
takes a list of ``texts``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from sluicegate.errors import InvalidRequest

COHERE_INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})


def family(model: str) -> str:
    # Inference profiles and ARNs wrap the model id, e.g. "us.cohere.embed-v4:0".
    if "amazon.titan-embed" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    raise InvalidRequest(
        f"Bedrock embeddings are served for Titan (amazon.titan-embed-*) and Cohere "
        f"(cohere.embed-*) models, not '{model}'",
        param="model",
    )


def _texts(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            "Bedrock embeds text only: input must be a string or an array of strings",
            param="input",
        )
    return texts


def embeddings_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    texts = _texts(body)
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)):
        raise InvalidRequest("dimensions must be an integer", param="dimensions")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
    if family(model) == "titan":
        if len(texts) != 1:
            raise InvalidRequest(
                "Titan embeddings take one input per request; send a single string",
                param="input",
            )
        out: dict[str, Any] = {"inputText": texts[0]}
        if dimensions is not None:
            out["dimensions"] = dimensions
        return out
    input_type = body.get("input_type", "search_document")
    if not isinstance(input_type, str) or input_type not in COHERE_INPUT_TYPES:
        raise InvalidRequest(
            "input_type must be one of " + ", ".join(sorted(COHERE_INPUT_TYPES)),
            param="input_type",
        )
    out = {"texts": texts, "input_type": input_type}
    if dimensions is not None:
        # Only Embed v4 has a configurable size; v3 would reject the field.
        if "embed-v4" not in model:
            raise InvalidRequest(f"'{model}' has a fixed size; omit dimensions", param="dimensions")
        out["output_dimension"] = dimensions
    return out


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """OpenAI's base64 form is the little-endian float32 bytes of the vector."""
    if encoding_format != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def decode_embeddings(
    data: dict[str, Any], model: str, encoding_format: str = "float"
) -> dict[str, Any]:
    """A Titan or Cohere answer (told apart by shape) as OpenAI's embeddings list."""
    prompt_tokens = 0
    if "embedding" in data:
        vectors = [data["embedding"]]
        prompt_tokens = int(data.get("inputTextTokenCount") or 0)
    else:
        embeddings = data["embeddings"]
        # With embedding_types set, Cohere answers {"float": [[...]], ...}.
        vectors = embeddings["float"] if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise ValueError("the provider's answer has no embedding vectors")
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode_vector([float(x) for x in vector], encoding_format),
            }
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        # Cohere on Bedrock reports its token count in a response header only.
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
