"""The built-in ``mock`` provider: an OpenAI-speaking model that lives in the process.

It answers ``mock: <last user message>``, one token per word, streamed word by
word when asked. ``mock_latency`` delays the first byte, ``mock_token_delay``
paces a stream, ``mock_error_status`` makes every answer fail with that status.
It produces OpenAI wire bytes, so everything downstream of it (the relay, the
decoders, the error mapping) is the path real providers take.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson

from sluicegate.dialects.openai import content_text, last_user_text
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.upstream import Timeouts, UpstreamResponse
from sluicegate.schema.sse import DONE, encode_data

_ERRORS = {
    400: ("invalid_request_error", "mock: the request was refused"),
    401: ("authentication_error", "mock: invalid credentials"),
    404: ("not_found_error", "mock: no such model"),
    429: ("rate_limit_error", "mock: rate limit reached"),
}


def _words(text: str) -> list[str]:
    return text.split()


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):  # a chat request (checked); any other body may carry junk
        return sum(
            len(_words(content_text(m.get("content")))) for m in messages if isinstance(m, dict)
        )
    value = body.get("prompt", body.get("input", ""))
    items = value if isinstance(value, list) else [value]
    return sum(len(_words(str(item))) for item in items)


class _MockResponse:
    def __init__(
        self,
        status: int,
        body: bytes,
        chunks: list[bytes] | None = None,
        delay: float = 0.0,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = {"content-type": content_type}
        self._body = body
        self._chunks = chunks
        self._delay = delay

    async def read(self, limit: int | None = None) -> bytes:
        return self._body if self._chunks is None else b"".join(self._chunks)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        for i, chunk in enumerate(self._chunks if self._chunks is not None else [self._body]):
            if i and self._delay:
                await asyncio.sleep(self._delay)
            yield chunk

    def release(self) -> None:
        return None


class MockTransport:
    """Stands where the HTTP client would, for services of ``provider: mock``."""

    def __init__(self, latency: float, token_delay: float, error_status: int | None) -> None:
        self.latency = latency
        self.token_delay = token_delay
        self.error_status = error_status

    async def open(
        self, request: UpstreamRequest, timeouts: Timeouts, tls: object = None
    ) -> UpstreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.error_status is not None:
            kind, message = _ERRORS.get(self.error_status, ("api_error", "mock: upstream failure"))
            error = {"error": {"message": message, "type": kind, "param": None, "code": None}}
            return _MockResponse(self.error_status, orjson.dumps(error))
        body: dict[str, Any] = orjson.loads(request.body)
        endpoint = request.url.rsplit("/", 1)[-1]
        if endpoint == "embeddings":
            return _MockResponse(200, orjson.dumps(embeddings(body)))
        if not request.url.endswith("/chat/completions"):
            body = {k: v for k, v in body.items() if k != "messages"}  # a legacy completion
        if body.get("stream") is True:
            return _MockResponse(
                200, b"", stream_chunks(body), self.token_delay, "text/event-stream"
            )
        return _MockResponse(200, orjson.dumps(completion(body)))


def answer_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return f"mock: {last_user_text(body)}".rstrip()
    prompt = body.get("prompt", "")
    return f"mock: {prompt if isinstance(prompt, str) else ' '.join(map(str, prompt))}".rstrip()


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    prompt = _prompt_tokens(body)
    completion = len(_words(text))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _id(body: dict[str, Any]) -> str:
    return (
        "chatcmpl-mock-"
        + hashlib.sha1(orjson.dumps(body.get("messages") or body.get("prompt"))).hexdigest()[:16]
    )


def completion(body: dict[str, Any]) -> dict[str, Any]:
    text = answer_text(body)
    created = int(time.time())
    if "messages" not in body:
        return {
            "id": _id(body).replace("chatcmpl", "cmpl"),
            "object": "text_completion",
            "created": created,
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(body, text),
        }
    return {
        "id": _id(body),
        "object": "chat.completion",
        "created": created,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(body, text),
    }


def stream_chunks(body: dict[str, Any]) -> list[bytes]:
    text = answer_text(body)
    base = {
        "id": _id(body),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload: dict[str, Any] = {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return encode_data(payload)

    words = _words(text)
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": word if i == 0 else " " + word}) for i, word in enumerate(words)]
    out.append(chunk({}, "stop"))
    if include_usage:
        out.append(encode_data({**base, "choices": [], "usage": _usage(body, text)}))
    out.append(DONE)
    return out


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    value = body["input"]
    items = value if isinstance(value, list) else [value]
    data = []
    for i, item in enumerate(items):
        digest = hashlib.sha256(str(item).encode()).digest()
        vector = [round(b / 255.0 - 0.5, 6) for b in digest[:16]]
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = sum(len(_words(str(item))) for item in items)
    return {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
