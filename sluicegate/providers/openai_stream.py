"""What the gateway corrects in OpenAI-dialect streams on their way to an OpenAI client,
done on a few events only, so that a relayed stream stays bytes:

- **Usage the client did not ask for.** The gateway always asks an OpenAI-family
  provider for a stream's usage (``stream_options.include_usage``): its own
  accounting needs it. A client that did not ask gets none: the usage chunk (empty
  ``choices``) is dropped, and a usage that rides on a chunk with choices (Mistral
  sends it unasked on the last one) is taken off that chunk. Only the events where
  ``"usage"`` holds an object are read, one per stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.schema.sse import edit_marked, encode_data, parse_event
from sluicegate.telemetry.usage import USAGE_OBJECT


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether an OpenAI client asked for its stream's usage."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class OpenAIEventEdits:
    """The corrections above, done on a relayed stream's events (``Adapter.passthrough_edits``)."""

    __slots__ = ("hide_usage",)

    def __init__(self, hide_usage: bool) -> None:
        self.hide_usage = hide_usage

    def feed(self, payload: bytes) -> bytes:
        if self.hide_usage:
            payload = edit_marked(payload, USAGE_OBJECT, _without_usage)
        return payload


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
