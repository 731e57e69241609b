"""``/v1/rerank`` in the shape Cohere defined (and Jina, Voyage, vLLM and TEI follow):

    {"model", "query", "documents": [str | {"text"}], "top_n"?, "return_documents"?}
    -> {"id", "results": [{"index", "relevance_score", "document"?: {"text"}}], "meta"?}

Cohere takes it as it is (``{base}/rerank``; the answer is relayed). OpenAI-compatible rerank
servers (vLLM, Jina, Infinity: ``{base}/rerank``) are sent the documents as strings, and
their answers read in any of the shapes they use: Cohere's and Jina's ``results``, Voyage's
``data``, TEI's bare list of ``{index, score}``. Hugging Face Text Embeddings Inference
(``provider: tei``) takes its own body at its root's ``/rerank``: ``query`` and ``texts``,
no ``top_n`` (the gateway cuts the list). Bedrock runs Cohere's and Amazon's rerank models
through ``InvokeModel``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from sluicegate.errors import InvalidRequest
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.multipart import FormFile
from sluicegate.providers.base import Adapter, UpstreamRequest
from sluicegate.providers.bedrock import model_segment

_JSON = {"content-type": "application/json", "accept": "application/json"}


def texts_of(body: dict[str, Any]) -> list[str]:
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise InvalidRequest("documents must be a non-empty array.", param="documents")
    texts: list[str] = []
    for i, doc in enumerate(documents):
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise InvalidRequest(
                f"documents[{i}] must be a string or an object with a text.", param="documents"
            )
        texts.append(text)
    return texts


def query_of(body: dict[str, Any]) -> str:
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise InvalidRequest("query must be a non-empty string.", param="query")
    return query


def top_n_of(body: dict[str, Any]) -> int | None:
    top_n = body.get("top_n")
    if top_n is None:
        return None
    if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
        raise InvalidRequest("top_n must be a positive integer.", param="top_n")
    return top_n


def cohere_answer(
    body: dict[str, Any], scored: list[tuple[int, float]], extra: dict[str, Any]
) -> dict[str, Any]:
    """Cohere's answer for (index, score) pairs, best first, cut to ``top_n``."""
    texts = texts_of(body)
    ranked = sorted(scored, key=lambda pair: pair[1], reverse=True)
    top_n = top_n_of(body)
    if top_n is not None:
        ranked = ranked[:top_n]
    results: list[dict[str, Any]] = []
    for index, score in ranked:
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if body.get("return_documents") and 0 <= index < len(texts):
            result["document"] = {"text": texts[index]}
        results.append(result)
    return {"id": str(uuid.uuid4()), "results": results, **extra}


def scores_of(document: Any) -> list[tuple[int, float]]:
    """(index, score) pairs from any of the rerank answers' shapes."""
    if isinstance(document, dict):
        items = document.get("results")
        if items is None:
            items = document.get("data")
    else:
        items = document
    if not isinstance(items, list):
        raise ValueError("no results in the rerank answer")
    pairs: list[tuple[int, float]] = []
    for item in items:
        score = item.get("relevance_score", item.get("relevanceScore", item.get("score")))
        pairs.append((int(item["index"]), float(score)))
    return pairs


class CohereRerank(Wire):
    relayed: ClassVar[bool] = True

    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        data = raw if body.get("model") == model else orjson.dumps({**body, "model": model})
        return UpstreamRequest("POST", base_url + "/rerank", dict(_JSON), data)


class CompatibleRerank(Wire):
    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        payload: dict[str, Any] = {
            "model": model,
            "query": query_of(body),
            "documents": texts_of(body),
        }
        top_n = top_n_of(body)
        if top_n is not None:
            payload["top_n"] = top_n
        return UpstreamRequest("POST", base_url + "/rerank", dict(_JSON), orjson.dumps(payload))

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        document = orjson.loads(data)
        extra: dict[str, Any] = {"model": model}
        if isinstance(document, dict) and isinstance(document.get("usage"), dict):
            extra["usage"] = document["usage"]
        return cohere_answer(body, scores_of(document), extra)


class TeiRerank(Wire):
    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        # TEI refuses what Cohere would cut: truncate as Cohere does with long documents.
        payload = {"query": query_of(body), "texts": texts_of(body), "truncate": True}
        top_n_of(body)  # refused now, not after the search was paid for
        # Its OpenAI embeddings live under /v1; its rerank at the server's root.
        url = base_url.removesuffix("/v1") + "/rerank"
        return UpstreamRequest("POST", url, dict(_JSON), orjson.dumps(payload))

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        return cohere_answer(body, scores_of(orjson.loads(data)), {"model": model})


class BedrockRerank(Wire):
    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        payload: dict[str, Any] = {"query": query_of(body), "documents": texts_of(body)}
        top_n = top_n_of(body)
        if top_n is not None:
            payload["top_n"] = top_n
        if "cohere." in model:
            payload["api_version"] = 2  # Cohere's models on Bedrock ask for it
        url = f"{base_url}/model/{model_segment(model)}/invoke"
        return UpstreamRequest("POST", url, dict(_JSON), orjson.dumps(payload))

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        return cohere_answer(body, scores_of(orjson.loads(data)), {})
