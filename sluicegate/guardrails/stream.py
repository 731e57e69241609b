"""Output guardrails on a streamed answer, between the provider's decoder and the client's
encoder: each text field of each choice has a ``StreamScanner`` of its own."""

from __future__ import annotations

from typing import Any

from sluicegate.errors import ContentBlocked
from sluicegate.guardrails.scanner import Matcher, Screening, StreamScanner

Key = tuple[int, str, int]  # (choice, field, tool call)


class ChunkGuard:
    """Rewrites canonical chunks as they stream; after a block, ``blocked`` is set and
    nothing more is let through."""

    def __init__(self, matcher: Matcher, screening: Screening, hold_max: int) -> None:
        self.matcher = matcher
        self.screening = screening
        self.hold_max = hold_max
        self.blocked: ContentBlocked | None = None
        self._scanners: dict[Key, StreamScanner] = {}
        self._last: dict[str, Any] = {}  # id, model, created of the last chunk

    def _scan(self, key: Key, text: str) -> str:
        scanner = self._scanners.get(key)
        if scanner is None:
            scanner = self._scanners[key] = StreamScanner(
                self.matcher, self.screening, "response", self.hold_max
            )
        return scanner.feed(text)

    def _flush(self, index: int) -> dict[Key, str]:
        return {
            key: text
            for key, scanner in self._scanners.items()
            if key[0] == index and (text := scanner.flush())
        }

    def feed(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.blocked is not None:
            return []
        try:
            for chunk in chunks:
                self._last = {k: chunk[k] for k in ("id", "model", "created") if k in chunk}
                for choice in chunk.get("choices") or ():
                    self._choice(choice)
        except ContentBlocked as exc:
            self.blocked = exc
            return []
        return chunks

    def _choice(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        if isinstance(choice.get("text"), str):  # /v1/completions
            choice["text"] = self._scan((index, "text", 0), choice["text"])
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                delta["content"] = self._scan((index, "content", 0), delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = (index, "tool", call.get("index", 0))
                    function["arguments"] = self._scan(key, function["arguments"])
        if choice.get("finish_reason"):
            self._place(choice, self._flush(index))

    def _place(self, choice: dict[str, Any], held: dict[Key, str]) -> None:
        """Put what was held back into the choice that ends it."""
        for (_, field, call_index), text in held.items():
            if field == "text":
                choice["text"] = (choice.get("text") or "") + text
                continue
            delta = choice.setdefault("delta", {})
            if field == "content":
                delta["content"] = (delta.get("content") or "") + text
                continue
            calls = delta.setdefault("tool_calls", [])
            call = next((c for c in calls if c.get("index", 0) == call_index), None)
            if call is None:
                call = {"index": call_index, "function": {}}
                calls.append(call)
            function = call.setdefault("function", {})
            function["arguments"] = (function.get("arguments") or "") + text

    def close(self) -> list[dict[str, Any]]:
        """What is still held when the stream ends without a finish reason, as one chunk."""
        if self.blocked is not None:
            return []
        indexes = sorted({key[0] for key in self._scanners})
        choices: list[dict[str, Any]] = []
        try:
            for index in indexes:
                held = self._flush(index)
                if held:
                    choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": None}
                    self._place(choice, held)
                    choices.append(choice)
        except ContentBlocked as exc:
            self.blocked = exc
            return []
        if not choices:
            return []
        return [{**self._last, "object": "chat.completion.chunk", "choices": choices}]
