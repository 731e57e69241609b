"""Canonical chunks -> the Responses API's semantic events.

The order is the one the official SDKs' accumulators rely on: ``response.created`` and
``response.in_progress`` first; per output item ``response.output_item.added``, its
content events, ``response.output_item.done``; then one ``response.completed`` (or
``response.incomplete`` when the provider stopped at the token limit) holding the whole
response. ``output_index`` counts items in the order they were added, every ``added``
has its ``done``, and ``sequence_number`` rises by one per event.

A message's text is closed when a tool call begins; tool calls stay open until the
stream ends (a provider may interleave the arguments of parallel calls). A tool call
whose arguments came in one piece still gets its delta. A custom tool's input is the
``input`` argument of its function call, so it is sent whole once the call is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.dialects.responses_items import item_id
from sluicegate.dialects.responses_objects import (
    call_item,
    failed_event,
    finish,
    message_item,
    reasoning_item,
    to_usage,
)
from sluicegate.errors import GatewayError
from sluicegate.schema.sse import encode_event


@dataclass(slots=True)
class _Open:
    """An output item being streamed."""

    index: int
    id: str
    kind: str  # message | reasoning | call
    parts: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    custom: bool = False
    blocks: list[dict[str, Any]] = field(default_factory=list)  # reasoning: provider blocks


class ResponsesStreamEncoder:
    def __init__(
        self,
        response: dict[str, Any],
        custom: frozenset[str],
        done: Callable[[dict[str, Any]], None],
    ) -> None:
        self.response = response  # the shell: status in_progress, no output yet
        self.custom = custom
        self._done = done
        self.sequence = 0
        self.started = False
        self.output: list[dict[str, Any] | None] = []  # each item's final form, once done
        self._text: _Open | None = None
        self._reasoning: _Open | None = None
        self._calls: dict[int, _Open] = {}  # canonical tool-call index -> its item
        self.usage: dict[str, Any] | None = None
        self.reason: str | None = None

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode_event(kind, payload)

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        if chunk.get("model") and not self.response.get("model"):
            self.response["model"] = chunk["model"]
        snapshot = {**self.response, "output": []}
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def _add(self, kind: str, item: dict[str, Any]) -> tuple[_Open, bytes]:
        index = len(self.output)
        self.output.append(None)
        opened = _Open(index, item["id"], kind)
        event = self._event("response.output_item.added", {"output_index": index, "item": item})
        return opened, event

    def _finish_item(self, opened: _Open, item: dict[str, Any]) -> bytes:
        self.output[opened.index] = item
        return self._event(
            "response.output_item.done", {"output_index": opened.index, "item": item}
        )

    # ------------------------------------------------------------ text
    def _text_delta(self, text: str) -> bytes:
        out = self._close_reasoning()
        if self._text is None:
            item = {**message_item(item_id("msg"), "", "in_progress"), "content": []}
            self._text, added = self._add("message", item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += added + self._event(
                "response.content_part.added", {**self._where(self._text), "part": part}
            )
        self._text.parts.append(text)
        fields = {**self._where(self._text), "delta": text, "logprobs": []}
        return out + self._event("response.output_text.delta", fields)

    def _where(self, opened: _Open, content: bool = True) -> dict[str, Any]:
        where: dict[str, Any] = {"item_id": opened.id, "output_index": opened.index}
        if content:
            where["content_index"] = 0
        return where

    def _close_text(self) -> bytes:
        opened = self._text
        if opened is None:
            return b""
        self._text = None
        text = "".join(opened.parts)
        item = message_item(opened.id, text)
        part = item["content"][0]
        where = self._where(opened)
        out = self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {**where, "part": part})
        return out + self._finish_item(opened, item)

    # ------------------------------------------------------------ reasoning
    def _reasoning_delta(self, text: str, blocks: list[dict[str, Any]]) -> bytes:
        out = b""
        if self._reasoning is None:
            out += self._close_text()
            self._reasoning, added = self._add("reasoning", reasoning_item(item_id("rs"), "", None))
            out += added
        opened = self._reasoning
        opened.blocks.extend(blocks)
        if text:
            where = {**self._where(opened, False), "summary_index": 0}
            if not opened.parts:
                part = {"type": "summary_text", "text": ""}
                out += self._event("response.reasoning_summary_part.added", {**where, "part": part})
            opened.parts.append(text)
            out += self._event("response.reasoning_summary_text.delta", {**where, "delta": text})
        return out

    def _close_reasoning(self) -> bytes:
        opened = self._reasoning
        if opened is None:
            return b""
        self._reasoning = None
        text = "".join(opened.parts)
        out = b""
        if opened.parts:
            where = {**self._where(opened, False), "summary_index": 0}
            out += self._event("response.reasoning_summary_text.done", {**where, "text": text})
            part = {"type": "summary_text", "text": text}
            out += self._event("response.reasoning_summary_part.done", {**where, "part": part})
        return out + self._finish_item(opened, reasoning_item(opened.id, text, opened.blocks))

    # ------------------------------------------------------------ tool calls
    def _call_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = int(call.get("index") or 0)
        function = call.get("function") or {}
        opened = self._calls.get(index)
        if opened is None:
            out += self._close_reasoning() + self._close_text()
            name = str(function.get("name") or "")
            custom = name in self.custom
            call_id = str(call.get("id") or item_id("call"))
            item = call_item(item_id("fc"), call_id, name, "", custom, "in_progress")
            opened, added = self._add("call", item)
            opened.call_id, opened.name, opened.custom = call_id, name, custom
            self._calls[index] = opened
            out += added
        piece = function.get("arguments")
        if isinstance(piece, str) and piece:
            opened.parts.append(piece)
            if not opened.custom:
                fields = {**self._where(opened, False), "delta": piece}
                out += self._event("response.function_call_arguments.delta", fields)
        return out

    def _close_call(self, opened: _Open) -> bytes:
        arguments = "".join(opened.parts)
        item = call_item(opened.id, opened.call_id, opened.name, arguments, opened.custom)
        where = self._where(opened, False)
        if opened.custom:
            text = item["input"]
            out = self._event("response.custom_tool_call_input.delta", {**where, "delta": text})
            out += self._event("response.custom_tool_call_input.done", {**where, "input": text})
        else:
            fields = {**where, "name": opened.name, "arguments": arguments}
            out = self._event("response.function_call_arguments.done", fields)
        return out + self._finish_item(opened, item)

    # ------------------------------------------------------------ the stream
    def encode(self, chunks: list[dict[str, Any]]) -> bytes:
        out = b""
        for chunk in chunks:
            if not self.started:
                out += self._start(chunk)
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                blocks = delta.get("reasoning_blocks") or []
                if delta.get("reasoning_content") or blocks:
                    out += self._reasoning_delta(str(delta.get("reasoning_content") or ""), blocks)
                if delta.get("content"):
                    out += self._text_delta(str(delta["content"]))
                for call in delta.get("tool_calls") or []:
                    out += self._call_delta(call)
                if choice.get("finish_reason"):
                    self.reason = choice["finish_reason"]
        return out

    def close(self) -> bytes:
        out = b"" if self.started else self._start({})
        out += self._close_reasoning() + self._close_text()
        for opened in sorted(self._calls.values(), key=lambda o: o.index):
            out += self._close_call(opened)
        self._calls.clear()
        response = {
            **self.response,
            "output": [item for item in self.output if item is not None],
            "usage": to_usage(self.usage),
        }
        finish(response, self.reason)
        self._done(response)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": response})

    def error(self, error: GatewayError) -> bytes:
        out = b"" if self.started else self._start({})
        response = {**self.response, "output": [i for i in self.output if i is not None]}
        return out + failed_event(response, error, self.sequence)
