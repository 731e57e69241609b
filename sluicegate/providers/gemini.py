"""Google's Gemini API and Vertex AI <-> the canonical (OpenAI) form.

Both speak ``generateContent`` / ``streamGenerateContent?alt=sse`` with the
same bodies (``gemini_request`` builds them); they differ in where a model
lives, how the gateway authenticates (an API key, or a service account's
OAuth token added by ``credentials.gcp``) and in their embeddings endpoints.
Each streamed event is a whole ``GenerateContentResponse``: text arrives in
pieces, function calls arrive whole.
"""

from __future__ import annotations

import base64
import math
import re
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from sluicegate.providers.base import Adapter, Endpoint, SSEDecoder, StreamDecoder, UpstreamRequest
from sluicegate.providers.gemini_request import (
    dimensions,
    embedding_inputs,
    encoding_format,
    join_call_id,
    refuse_native_gs,
    translate_request,
)
from sluicegate.providers.paths import refuse, segment
from sluicegate.schema.chat import ChatMessage, Usage, make_chunk, make_usage, make_usage_chunk

if TYPE_CHECKING:
    from sluicegate.config.model import Service

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_TOO_LONG = re.compile(r"exceeds the maximum number of tokens|too long", re.I)
_JSON = "application/json"


# ---------------------------------------------------------------- answers
def finish_reason(reason: str, has_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def tool_call(part: dict[str, Any], n: int) -> dict[str, Any]:
    """A ``functionCall`` part as an OpenAI tool call; Gemini may give no id."""
    call = part["functionCall"]
    signature = part.get("thoughtSignature")
    return {
        "id": join_call_id(str(call.get("id") or f"call_{n}"), str(signature or "")),
        "type": "function",
        "function": {
            "name": str(call.get("name", "")),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def translate_usage(meta: dict[str, Any]) -> Usage:
    # promptTokenCount already counts the cached tokens, as OpenAI's prompt_tokens does;
    # OpenAI's completion_tokens include the reasoning ones, Gemini's candidates do not.
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    cached = meta.get("cachedContentTokenCount")
    return make_usage(
        int(meta.get("promptTokenCount") or 0) + int(meta.get("toolUsePromptTokenCount") or 0),
        int(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached=int(cached) if cached is not None else None,
        reasoning=thoughts if thoughts else None,
    )


def prompt_blocked(data: dict[str, Any]) -> GatewayError | None:
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if reason and not data.get("candidates"):
        return InvalidRequest(
            f"Gemini blocked the prompt (blockReason {reason})", code="content_filter"
        )
    return None


def _message(candidate: dict[str, Any]) -> tuple[ChatMessage, str]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "functionCall" in part:
            calls.append(tool_call(part, len(calls)))
        elif "text" in part:
            (thoughts if part.get("thought") else texts).append(str(part["text"]))
    message: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    return message, finish_reason(str(candidate.get("finishReason") or "STOP"), bool(calls))


def translate_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    blocked = prompt_blocked(data)
    if blocked is not None:
        raise blocked
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ValueError("the answer has no candidates")
    choices = []
    for i, candidate in enumerate(candidates):
        message, finish = _message(candidate)
        choices.append(
            {"index": int(candidate.get("index", i)), "message": message, "finish_reason": finish}
        )
    response: dict[str, Any] = {
        "id": str(data.get("responseId") or "chatcmpl-gemini"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("modelVersion") or model),
        "choices": choices,
    }
    if isinstance(data.get("usageMetadata"), dict):
        response["usage"] = translate_usage(data["usageMetadata"])
    return response


# ---------------------------------------------------------------- streams
@dataclass
class _Candidate:
    calls: int = 0
    done: bool = False


class GeminiStream(SSEDecoder):
    """``alt=sse`` events (whole response chunks) -> OpenAI chunks.

    The stream is complete once every candidate has a finishReason and the
    usage has come (Gemini sends both in its last event; there is no [DONE]).
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self.id = ""
        self.model = model
        self.created = int(time.time())
        self.candidates: dict[int, _Candidate] = {}

    def _chunk(self, index: int, delta: ChatMessage, finish: str | None = None) -> dict[str, Any]:
        chunk = make_chunk(self.id, self.model, self.created, delta, finish)
        chunk["choices"][0]["index"] = index
        return dict(chunk)

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        event = orjson.loads(data)
        if not isinstance(event, dict):
            raise ValueError("a stream event is not a JSON object")
        if isinstance(event.get("error"), dict):
            raise stream_error(event["error"])
        if self.finished:
            return []
        blocked = prompt_blocked(event)
        if blocked is not None:
            raise blocked
        if not self.id:
            self.id = str(event.get("responseId") or "chatcmpl-gemini")
            self.model = str(event.get("modelVersion") or self.model)
        out: list[dict[str, Any]] = []
        for candidate in event.get("candidates") or []:
            out.extend(self._candidate(candidate))
        usage = event.get("usageMetadata")
        states = self.candidates.values()
        if isinstance(usage, dict) and states and all(s.done for s in states):
            self.finished = True
            out.append(
                dict(make_usage_chunk(self.id, self.model, self.created, translate_usage(usage)))
            )
        return out

    def _candidate(self, candidate: dict[str, Any]) -> list[dict[str, Any]]:
        index = int(candidate.get("index", 0))
        out: list[dict[str, Any]] = []
        state = self.candidates.get(index)
        if state is None:
            state = self.candidates[index] = _Candidate()
            out.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                call = {"index": state.calls, **tool_call(part, state.calls)}
                state.calls += 1
                out.append(self._chunk(index, {"tool_calls": [call]}))
            elif part.get("text") and part.get("thought"):
                out.append(self._chunk(index, {"reasoning_content": str(part["text"])}))
            elif part.get("text"):
                out.append(self._chunk(index, {"content": str(part["text"])}))
        reason = candidate.get("finishReason")
        if reason and not state.done:
            state.done = True
            out.append(self._chunk(index, {}, finish_reason(str(reason), state.calls > 0)))
        return out


# ---------------------------------------------------------------- errors
def _fields(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {"message": body[:500].decode("utf-8", "replace").strip()}
    if isinstance(data, list) and data:  # the non-SSE stream endpoint wraps it in an array
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        d
        for d in error.get("details") or []
        if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)
    ]


def _retry_after(error: dict[str, Any]) -> str | None:
    for info in _details(error, "google.rpc.RetryInfo"):
        delay = str(info.get("retryDelay") or "")
        try:
            return str(max(1, math.ceil(float(delay.removesuffix("s")))))
        except ValueError:
            continue
    return None


def translate_error(status: int, headers: dict[str, str], body: bytes) -> GatewayError:
    error = _fields(body)
    message = str(error.get("message") or f"the provider answered {status}")
    reasons = {str(d.get("reason")) for d in _details(error, "google.rpc.ErrorInfo")}
    if "API_KEY_INVALID" in reasons:
        # The gateway's key was refused; the client can do nothing about it.
        return UpstreamError(
            "the provider refused the gateway's API key (API_KEY_INVALID)",
            code="upstream_auth_failed",
        )
    google_status = error.get("status")
    code: str | None = str(google_status).lower() if google_status else None
    if status == 400 and _TOO_LONG.search(message):
        code = "context_length_exceeded"
    elif status == 429:
        code = "rate_limit_exceeded"
    keep = {}
    retry_after = headers.get("retry-after") or (_retry_after(error) if status == 429 else None)
    if retry_after is not None:
        keep["retry-after"] = retry_after
    return UpstreamStatusError(status, message, code=code, headers=keep)


def stream_error(error: dict[str, Any]) -> GatewayError:
    message = f"Gemini: {error.get('message', 'error in stream')}"
    code = str(error.get("status") or "").lower() or None
    status = error.get("code")
    if status == 429:
        return RateLimited(message)
    if status == 400:
        if _TOO_LONG.search(message):
            return InvalidRequest(message, code="context_length_exceeded")
        return InvalidRequest(message, code=code)
    return UpstreamError(message, code=code)


# ---------------------------------------------------------------- embeddings
def embeddings_response(
    vectors: list[list[float]], model: str, tokens: int, encoding: str = "float"
) -> dict[str, Any]:
    """OpenAI's embeddings answer; base64 is little-endian float32, as OpenAI sends it."""
    data = []
    for i, values in enumerate(vectors):
        embedding: Any = values
        if encoding == "base64":
            packed = struct.pack(f"<{len(values)}f", *values)
            embedding = base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# What countTokens takes of a generateContent request.
_COUNTED = frozenset({"contents", "systemInstruction", "tools"})


# ---------------------------------------------------------------- adapters
def _name(part: str, model: str, provider: str) -> str:
    # ':' separates a resource from its method (":generateContent") in Google's URLs.
    return segment(part, model, provider, forbidden=":")


class GeminiAdapter(Adapter):
    name: ClassVar[str] = "gemini"
    endpoints: frozenset[str] = frozenset({"chat", "embeddings", "count_tokens"})

    def __init__(self, service: str = "", allow_gs_uris: bool = False) -> None:
        # gs:// URIs in messages: refused (a 400 naming ``service``) unless allowed.
        self.service = service
        self.refuse_gs = None if allow_gs_uris else service
        self.reads_native_bodies = not allow_gs_uris

    @classmethod
    def for_service(cls, service: Service) -> GeminiAdapter:
        return cls(service.name, service.allow_gs_uris)

    def check_native(self, path: str, body: bytes | None) -> None:
        if body is not None and self.refuse_gs is not None:
            refuse_native_gs(body, self.refuse_gs)

    def model_path(self, model: str) -> str:
        """Where ``model`` lives under the base URL (``models/…`` or ``tunedModels/…``)."""
        parts = model.split("/")
        if len(parts) == 1:
            parts = ["models", model]
        if len(parts) != 2 or parts[0] not in ("models", "tunedModels"):
            raise refuse(model, self.name, "a model is <name>, models/<name> or tunedModels/<name>")
        return f"{parts[0]}/{_name(parts[1], model, self.name)}"

    def build(
        self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, model: str, base_url: str
    ) -> UpstreamRequest:
        headers = {"content-type": _JSON}
        named = self.model_path(model)
        where = f"{base_url}/{named}"
        if endpoint == "embeddings":
            encoding_format(body)
            payload = self.embeddings_request(body, model)
            headers["accept"] = _JSON
            return UpstreamRequest(
                "POST", f"{where}:{self.embed_method}", headers, orjson.dumps(payload)
            )
        payload = translate_request(body, refuse_gs=self.refuse_gs)
        if endpoint == "count_tokens":  # another dialect's request, counted (Responses)
            counted = {k: v for k, v in payload.items() if k in _COUNTED}
            headers["accept"] = _JSON
            data = orjson.dumps(self.count_body(counted, named))
            return UpstreamRequest("POST", f"{where}:countTokens", headers, data)
        if body.get("stream") is True:
            headers["accept"] = "text/event-stream"
            return UpstreamRequest(
                "POST",
                f"{where}:streamGenerateContent",
                headers,
                orjson.dumps(payload),
                True,
                {"alt": "sse"},
            )
        headers["accept"] = _JSON
        return UpstreamRequest("POST", f"{where}:generateContent", headers, orjson.dumps(payload))

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
        if endpoint == "embeddings":
            encoding = str((request or {}).get("encoding_format") or "float")
            return self.embeddings_answer(data, model, encoding)
        if endpoint == "count_tokens":
            return {"input_tokens": int(data["totalTokens"]), "model": model}
        return translate_response(data, model)

    def count_body(self, counted: dict[str, Any], named: str) -> dict[str, Any]:
        """Gemini's countTokens takes the whole request (system instruction and tools
        counted too) under ``generateContentRequest``, naming its model."""
        return {"generateContentRequest": {"model": named, **counted}}

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        return GeminiStream(model)

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        return translate_error(status, headers, body)

    # Embeddings: batchEmbedContents on the Gemini API.
    embed_method: ClassVar[str] = "batchEmbedContents"

    def embeddings_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        size = dimensions(body)
        name = self.model_path(model)
        requests = []
        for text in embedding_inputs(body):
            request: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if size is not None:
                request["outputDimensionality"] = size
            requests.append(request)
        return {"requests": requests}

    def embeddings_answer(
        self, data: dict[str, Any], model: str, encoding: str = "float"
    ) -> dict[str, Any]:
        vectors = [[float(v) for v in e["values"]] for e in data["embeddings"]]
        return embeddings_response(vectors, model, 0, encoding)


class VertexAdapter(GeminiAdapter):
    """Vertex AI: the Gemini body under a project's and location's publisher models."""

    name: ClassVar[str] = "vertex"
    embed_method: ClassVar[str] = "predict"

    def __init__(
        self,
        project: str,
        location: str = "us-central1",
        service: str = "",
        allow_gs_uris: bool = False,
    ) -> None:
        super().__init__(service, allow_gs_uris)
        self.project = project
        self.location = location

    @classmethod
    def for_service(cls, service: Service) -> VertexAdapter:
        if not service.project:
            raise ValueError(f"service '{service.name}': a vertex service needs project")
        location = service.location or "us-central1"
        return cls(service.project, location, service.name, service.allow_gs_uris)

    def check_native(self, path: str, body: bytes | None) -> None:
        scope = f"/projects/{self.project}/locations/{self.location}/"
        if not path.startswith(scope):
            raise InvalidRequest(
                f"service '{self.service}' reaches {scope[1:-1]} only: a "
                f"pass-through path begins with {scope}",
                code="invalid_path",
            )
        super().check_native(path, body)

    def count_body(self, counted: dict[str, Any], named: str) -> dict[str, Any]:
        return counted  # Vertex's countTokens takes the request's fields as they are

    def model_path(self, model: str) -> str:
        """``model`` under this service's project and location, and nowhere else: a name,
        ``publishers/<p>/models/<name>``, ``endpoints/<id>``, or either in full
        (``projects/<project>/locations/<location>/…``) with the service's own project and
        location."""
        scope = f"projects/{self.project}/locations/{self.location}"
        parts = model.split("/")
        if parts[0] == "projects":
            if parts[:4] != ["projects", self.project, "locations", self.location]:
                raise refuse(model, self.name, f"this service reaches {scope} only")
            parts = parts[4:]
        if len(parts) == 1 and model == parts[0]:
            parts = ["publishers", "google", "models", model]
        if len(parts) == 4 and parts[0] == "publishers" and parts[2] == "models":
            publisher, name = _name(parts[1], model, self.name), _name(parts[3], model, self.name)
            return f"{scope}/publishers/{publisher}/models/{name}"
        if len(parts) == 2 and parts[0] == "endpoints":
            return f"{scope}/endpoints/{_name(parts[1], model, self.name)}"
        raise refuse(
            model,
            self.name,
            "a model is <name>, publishers/<publisher>/models/<name> or endpoints/<id>, "
            f"optionally under {scope}",
        )

    def embeddings_request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"instances": [{"content": t} for t in embedding_inputs(body)]}
        size = dimensions(body)
        if size is not None:
            payload["parameters"] = {"outputDimensionality": size}
        return payload

    def embeddings_answer(
        self, data: dict[str, Any], model: str, encoding: str = "float"
    ) -> dict[str, Any]:
        vectors: list[list[float]] = []
        tokens = 0
        for prediction in data["predictions"]:
            embeddings = prediction["embeddings"]
            vectors.append([float(v) for v in embeddings["values"]])
            tokens += int((embeddings.get("statistics") or {}).get("token_count") or 0)
        return embeddings_response(vectors, model, tokens, encoding)
