"""What the gateway corrects in OpenAI-dialect streams on their way to an OpenAI client.

Two things, both done on a few events only, so that a relayed stream stays bytes:

- **Usage the client did not ask for.** The gateway always asks an OpenAI-family
  provider for a stream's usage (``stream_options.include_usage``): its own
  accounting needs it. A client that did not ask gets none: the usage chunk (empty
  ``choices``) is dropped, and a usage that rides on a chunk with choices (Mistral
  sends it unasked on the last one) is taken off that chunk. Only the events where
  ``"usage"`` holds an object are read, one per stream.
- **Tool calls repeated in every chunk.** OpenAI sends a tool call's ``id``, ``type``
  and ``function.name`` in its first delta only, then the arguments in pieces; the
  SDKs' accumulators join every string they get, so a server that repeats the id and
  the name in each delta (llama.cpp's) would reach them as ``get_weatherget_weather``.
  ``ToolCallDeltas`` keeps the first and drops the repeats. Only services of the
  OpenAI-compatible family get it (OpenAI's own streams are left alone), and on a
  relayed stream only the events that hold ``"tool_calls"`` are read.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from sluicegate.schema.sse import edit_marked, encode_data, parse_event
from sluicegate.telemetry.usage import USAGE_OBJECT

_TOOL_CALLS = re.compile(rb'"tool_calls"')


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether an OpenAI client asked for its stream's usage."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ToolCallDeltas:
    """A stream's tool-call deltas in OpenAI's shape: id, type and name once per call."""

    __slots__ = ("_first",)

    def __init__(self) -> None:
        # (choice index, call index) -> [id, name] as first sent
        self._first: dict[tuple[Any, Any], list[Any]] = {}

    def repair(self, chunk: dict[str, Any]) -> bool:
        """Take the repeats out of ``chunk`` (in place); whether anything was taken."""
        changed = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            calls = delta.get("tool_calls") if isinstance(delta, dict) else None
            if not isinstance(calls, list):
                continue
            for call in calls:
                if isinstance(call, dict):
                    changed = self._call(choice.get("index", 0), call) or changed
        return changed

    def _call(self, choice: Any, call: dict[str, Any]) -> bool:
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        first = self._first.get((choice, call.get("index", 0)))
        if first is None:
            self._first[(choice, call.get("index", 0))] = [call.get("id"), function.get("name")]
            return False
        changed = False
        if call.get("id"):
            if first[0] is None:
                first[0] = call["id"]  # the first id, late: kept
            elif call["id"] == first[0]:
                del call["id"]
                changed = True
        if "type" in call:  # a later delta of a call that has begun
            del call["type"]
            changed = True
        if function.get("name"):
            if first[1] is None:
                first[1] = function["name"]
            elif function["name"] == first[1]:
                del function["name"]
                changed = True
        return changed


class OpenAIEventEdits:
    """The corrections above, done on a relayed stream's events (``Adapter.passthrough_edits``)."""

    __slots__ = ("hide_usage", "tool_calls")

    def __init__(self, hide_usage: bool, tool_calls: ToolCallDeltas | None) -> None:
        self.hide_usage = hide_usage
        self.tool_calls = tool_calls

    def feed(self, payload: bytes) -> bytes:
        if self.hide_usage:
            payload = edit_marked(payload, USAGE_OBJECT, _without_usage)
        if self.tool_calls is not None and b'"tool_calls"' in payload:
            payload = edit_marked(payload, _TOOL_CALLS, self._repaired)
        return payload

    def _repaired(self, event: bytes) -> bytes:
        chunk = _chunk(event)
        if chunk is None or self.tool_calls is None or not self.tool_calls.repair(chunk):
            return event
        return encode_data(chunk)


def _chunk(event: bytes) -> dict[str, Any] | None:
    _, data = parse_event(event)
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # not a chunk: relayed as it came, as any other event
    return chunk if isinstance(chunk, dict) else None


def _without_usage(event: bytes) -> bytes:
    chunk = _chunk(event)
    if chunk is None or not isinstance(chunk.get("usage"), dict):
        return event
    if not chunk.get("choices"):
        return b""  # the usage chunk: nothing else in it
    del chunk["usage"]
    return encode_data(chunk)
