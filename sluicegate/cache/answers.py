"""Cached answers: read from what the client was sent, replayed in any client's dialect.

An entry holds the answer in the canonical form (an OpenAI chat completion),
whatever the client's dialect was, so an answer first given to an Anthropic
client can be replayed to an OpenAI client and the other way round, as a
whole answer or as a stream. It is read back from the bytes the client got,
after it got them: a whole answer is parsed once, a stream's events are merged
into one completion (text, tool calls, finish reason, usage).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.asgi import Message, Send
from sluicegate.dialects.base import Dialect
from sluicegate.providers.anthropic import AnthropicStream, translate_response
from sluicegate.providers.openai_responses import to_completion
from sluicegate.schema.sse import DONE, EventSplitter, parse_event
from sluicegate.telemetry.usage import TokenCounts, read_usage


@dataclass(slots=True)
class Entry:
    """One cached answer and who produced it."""

    service: str
    provider: str
    model: str  # the upstream model that answered
    answer: dict[str, Any]  # canonical chat completion

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"s": self.service, "p": self.provider, "m": self.model, "a": self.answer}
        )

    @classmethod
    def loads(cls, data: bytes) -> Entry:
        doc = orjson.loads(data)
        return cls(doc["s"], doc["p"], doc["m"], doc["a"])

    @property
    def usage(self) -> TokenCounts | None:
        return read_usage(self.answer.get("usage"))


class Capture:
    """Collects what is sent to the client, up to ``limit`` bytes (beyond: not cached)."""

    def __init__(self, limit: int) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit

    @property
    def overflowed(self) -> bool:
        return self.size > self.limit

    def tap(self, send: Send) -> Send:
        async def tapped(message: Message) -> None:
            if message["type"] == "http.response.body" and not self.overflowed:
                body = message.get("body", b"")
                self.size += len(body)
                if not self.overflowed:
                    self.parts.append(body)
            await send(message)

        return tapped

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


def answer_of(dialect: str, stream: bool, data: bytes) -> dict[str, Any] | None:
    """The canonical completion in what a client of ``dialect`` was sent; None when it
    is not one complete answer."""
    try:
        if not stream:
            body = orjson.loads(data)
            if not isinstance(body, dict):
                return None
            if dialect == "anthropic":
                return translate_response(body) if body.get("type") == "message" else None
            if dialect == "responses":
                return _response(body)
            return body if body.get("object") == "chat.completion" else None
        if dialect == "responses":
            return _responses_stream(data)
        if dialect == "anthropic":
            decoder = AnthropicStream("")
            chunks = decoder.feed(data)
            if not decoder.finished or decoder.error is not None:
                return None
            return merge(chunks)
        return _openai_stream(data)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def _response(body: dict[str, Any]) -> dict[str, Any] | None:
    """A Responses API response, when it is complete, as a canonical completion."""
    if body.get("object") != "response" or body.get("status") != "completed":
        return None
    return to_completion(body, str(body.get("model", "")))


def _responses_stream(data: bytes) -> dict[str, Any] | None:
    for raw in reversed(EventSplitter().feed(data)):
        name, payload = parse_event(raw)
        if name == "response.completed":
            response = orjson.loads(payload).get("response")
            return _response(response) if isinstance(response, dict) else None
    return None


def _openai_stream(data: bytes) -> dict[str, Any] | None:
    chunks: list[dict[str, Any]] = []
    done = False
    for raw in EventSplitter().feed(data):
        if raw == DONE:
            done = True
            continue
        _, payload = parse_event(raw)
        chunk = orjson.loads(payload)
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        chunks.append(chunk)
    return merge(chunks) if done and chunks else None


def merge(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Canonical chunks merged into the completion they spell out."""
    choices: dict[int, dict[str, Any]] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    head: dict[str, Any] = {}
    usage: Any = None
    for chunk in chunks:
        if not head and chunk.get("id") is not None:
            head = chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            out = choices.setdefault(
                index, {"index": index, "message": {"role": "assistant"}, "finish_reason": None}
            )
            message = out["message"]
            delta = choice.get("delta") or {}
            for name in ("content", "reasoning_content", "refusal"):
                piece = delta.get(name)
                if isinstance(piece, str):
                    message[name] = message.get(name, "") + piece
            for call in delta.get("tool_calls") or ():
                mine = calls.setdefault(index, {}).setdefault(
                    int(call.get("index") or 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    mine["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    mine["function"]["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    mine["function"]["arguments"] += function["arguments"]
            if choice.get("finish_reason"):
                out["finish_reason"] = choice["finish_reason"]
    if not choices or any(c["finish_reason"] is None for c in choices.values()):
        return None  # a stream that never said it was finished is not a whole answer
    for index, by_position in calls.items():
        choices[index]["message"]["tool_calls"] = [by_position[i] for i in sorted(by_position)]
    for choice in choices.values():
        choice["message"].setdefault("content", None)
    answer: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if usage is not None:
        answer["usage"] = usage
    return answer


def fresh(answer: dict[str, Any]) -> dict[str, Any]:
    """The cached completion as a new answer: its own id and creation time."""
    return {**answer, "id": "chatcmpl-" + os.urandom(12).hex(), "created": int(time.time())}


def chunks_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """A completion as the canonical chunks of a stream: per choice the role, the
    reasoning, the text, each tool call whole, the finish; then the usage."""
    base = {
        "id": answer.get("id", ""),
        "object": "chat.completion.chunk",
        "created": answer.get("created", 0),
        "model": answer.get("model", ""),
    }

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}

    out: list[dict[str, Any]] = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        out.append(chunk(index, {"role": "assistant", "content": ""}))
        for name in ("reasoning_content", "content", "refusal"):
            if message.get(name):
                out.append(chunk(index, {name: message[name]}))
        for position, call in enumerate(message.get("tool_calls") or ()):
            out.append(chunk(index, {"tool_calls": [{"index": position, **call}]}))
        out.append(chunk(index, {}, choice.get("finish_reason") or "stop"))
    if answer.get("usage"):
        out.append({**base, "choices": [], "usage": answer["usage"]})
    return out


def replay_body(dialect: Dialect, entry: Entry) -> bytes:
    return dialect.encode_response("chat", fresh(entry.answer))


def replay_stream(dialect: Dialect, request: dict[str, Any], entry: Entry) -> bytes:
    answer = fresh(entry.answer)
    encoder = dialect.stream_encoder(request, entry.model)
    return encoder.encode(chunks_of(answer)) + encoder.close()
