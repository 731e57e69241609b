"""Request and response bodies for the audit log (``audit.log_bodies``).

Only made when bodies are logged: otherwise the request path holds no
reference to a body past its answer and copies nothing. A whole answer is
kept as the bytes already sent; a streamed one is assembled from the events
sent to the client (text, reasoning, tool calls, finish reason) rather than
kept as raw SSE, which would be several times larger than what it says.

Before a row is written, the request's guardrails scrub both bodies
(``telemetry.audit.scrub_bodies``); then each is cut to ``audit.max_body_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sluicegate.asgi import Message, Send


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    # index -> {"id", "name", "arguments"}; the arguments arrive in pieces
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


class Transcript:
    """The answer of a stream, assembled from the events the client was sent
    (OpenAI chat/completions chunks or Anthropic message events)."""

    __slots__ = ("_choices", "_limit", "_size", "cut")

    def __init__(self, limit: int) -> None:
        self._choices: dict[int, _Choice] = {}
        self._limit = limit  # stop collecting past this many bytes of text: the row is capped
        self._size = 0
        self.cut = False

    def feed(self, payload: bytes) -> None:
        """Whole SSE events as relayed; events without JSON data are skipped."""
        for event in payload.split(b"\n\n"):
            start = event.find(b"data:")
            if start < 0:
                continue
            data = event[start + 5 :].strip()
            if not data or data == b"[DONE]":
                continue
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict):
                self._read(message)

    def _choice(self, index: Any) -> _Choice:
        key = index if isinstance(index, int) else 0
        choice = self._choices.get(key)
        if choice is None:
            choice = self._choices[key] = _Choice()
        return choice

    def _text(self, into: list[str], text: Any) -> None:
        if not isinstance(text, str) or not text:
            return
        if self._size >= self._limit:
            self.cut = True
            return
        self._size += len(text)
        into.append(text)

    def _read(self, message: dict[str, Any]) -> None:
        choices = message.get("choices")
        if isinstance(choices, list):  # OpenAI: chat.completion.chunk or text_completion
            for item in choices:
                if isinstance(item, dict):
                    self._openai(item)
            return
        kind = message.get("type")
        if isinstance(kind, str):
            self._anthropic(kind, message)

    def _openai(self, item: dict[str, Any]) -> None:
        choice = self._choice(item.get("index"))
        if item.get("finish_reason"):
            choice.finish_reason = str(item["finish_reason"])
        self._text(choice.content, item.get("text"))  # legacy completions
        delta = item.get("delta")
        if not isinstance(delta, dict):
            return
        self._text(choice.content, delta.get("content"))
        self._text(choice.reasoning, delta.get("reasoning_content") or delta.get("reasoning"))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            tool = choice.tools.setdefault(
                index if isinstance(index, int) else len(choice.tools),
                {"id": None, "name": None, "arguments": []},
            )
            if call.get("id"):
                tool["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                if function.get("name"):
                    tool["name"] = function["name"]
                self._text(tool["arguments"], function.get("arguments"))

    def _anthropic(self, kind: str, message: dict[str, Any]) -> None:
        choice = self._choice(0)
        if kind == "content_block_start":
            block = message.get("content_block")
            if isinstance(block, dict) and block.get("type") in ("tool_use", "server_tool_use"):
                choice.tools[_int(message.get("index"))] = {
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": [],
                }
            elif isinstance(block, dict):
                self._text(choice.content, block.get("text"))
        elif kind == "content_block_delta":
            delta = message.get("delta")
            if not isinstance(delta, dict):
                return
            tool = choice.tools.get(_int(message.get("index")))
            if delta.get("type") == "input_json_delta" and tool is not None:
                self._text(tool["arguments"], delta.get("partial_json"))
            elif delta.get("type") == "thinking_delta":
                self._text(choice.reasoning, delta.get("thinking"))
            else:
                self._text(choice.content, delta.get("text"))
        elif kind == "message_delta":
            delta = message.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                choice.finish_reason = str(delta["stop_reason"])

    def render(self) -> bytes:
        """``{"stream": true, "content", "reasoning"?, "tool_calls"?, "finish_reason"}``;
        with several choices (n > 1), ``"choices"`` holds one such object each."""
        rendered = [self._render(self._choices[i]) for i in sorted(self._choices)]
        if len(rendered) == 1:
            out: dict[str, Any] = {"stream": True, **rendered[0]}
        else:
            out = {"stream": True, "choices": rendered}
        if self.cut:
            out["incomplete"] = True  # text past the size limit was not collected
        return orjson.dumps(out)

    @staticmethod
    def _render(choice: _Choice) -> dict[str, Any]:
        out: dict[str, Any] = {"content": "".join(choice.content)}
        if choice.reasoning:
            out["reasoning"] = "".join(choice.reasoning)
        if choice.tools:
            out["tool_calls"] = [
                {"id": t["id"], "name": t["name"], "arguments": "".join(t["arguments"])}
                for _, t in sorted(choice.tools.items())
            ]
        out["finish_reason"] = choice.finish_reason
        return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class Bodies:
    """What the audit log keeps of one request's bodies; references, not copies."""

    __slots__ = ("limit", "request", "response", "transcript")

    def __init__(self, request: bytes, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.response: bytes | None = None  # a whole answer or an error, as sent
        self.transcript: Transcript | None = None  # a stream's answer

    def tap(self, send: Send) -> Send:
        """``send`` that also feeds what a stream sends to the transcript."""
        transcript = self.transcript = Transcript(self.limit)

        async def tapped(message: Message) -> None:
            body = message.get("body")
            if body:
                transcript.feed(body)
            await send(message)

        return tapped

    def answer(self) -> bytes | None:
        if self.transcript is not None:
            return self.transcript.render()
        return self.response


def clip(body: bytes | None, limit: int) -> tuple[str | None, bool | None]:
    """A body as stored: text of at most ``limit`` bytes, and whether it was cut."""
    if body is None:
        return None, None
    cut = len(body) > limit
    if cut:
        body = body[:limit]
    text = body.decode("utf-8", errors="replace")
    if cut and text.endswith("\ufffd"):
        text = text[:-1]  # a multi-byte character split by the cut
    if "\x00" in text:  # PostgreSQL's text cannot hold NUL
        text = text.replace("\x00", "\ufffd")
    return text, cut
