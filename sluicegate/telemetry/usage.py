"""Token usage, read from whatever shape the answer came in.

OpenAI's usage (``prompt_tokens`` including cached ones, details for cached
and reasoning tokens) and Anthropic's (``input_tokens`` excluding cache reads
and writes) both reduce to ``TokenCounts``. Streams report usage in pieces
(Anthropic: input in ``message_start``, output in ``message_delta``), so
counts merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class TokenCounts:
    input: int = 0  # every prompt token, cached ones included
    output: int = 0  # every completion token, reasoning included
    cached: int = 0  # prompt tokens read from the provider's cache
    cache_write: int = 0  # prompt tokens written to the provider's cache
    reasoning: int = 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def read_usage(usage: Any, into: TokenCounts | None = None) -> TokenCounts | None:
    """Counts from an OpenAI or Anthropic usage object (merged into ``into``)."""
    if not isinstance(usage, dict):
        return into
    counts = into or TokenCounts()
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        details = usage.get("prompt_tokens_details") or {}
        completion = usage.get("completion_tokens_details") or {}
        counts.input = _int(usage.get("prompt_tokens")) or counts.input
        counts.output = _int(usage.get("completion_tokens")) or counts.output
        counts.cached = _int(details.get("cached_tokens")) or counts.cached
        counts.cache_write = _int(details.get("cache_write_tokens")) or counts.cache_write
        counts.reasoning = _int(completion.get("reasoning_tokens")) or counts.reasoning
        return counts
    if "input_tokens" in usage or "output_tokens" in usage:
        read = _int(usage.get("cache_read_input_tokens"))
        written = _int(usage.get("cache_creation_input_tokens"))
        if "input_tokens" in usage:
            counts.input = _int(usage["input_tokens"]) + read + written or counts.input
            counts.cached = read or counts.cached
            counts.cache_write = written or counts.cache_write
        counts.output = _int(usage.get("output_tokens")) or counts.output
    return counts


def usage_of_body(body: bytes) -> TokenCounts | None:
    """Usage of a whole answer (OpenAI completion or Anthropic message)."""
    if b'"usage"' not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return read_usage(data.get("usage")) if isinstance(data, dict) else None


def usage_of_events(payload: bytes, into: TokenCounts | None) -> TokenCounts | None:
    """Merge the usage found in relayed SSE events; events without usage cost one ``in``."""
    if b'"usage":{' not in payload and b'"usage": {' not in payload:
        return into
    for event in payload.split(b"\n\n"):
        if b'"usage"' not in event:
            continue
        start = event.find(b"data:")
        if start < 0:
            continue
        try:
            data = orjson.loads(event[start + 5 :])
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        usage = data.get("usage")
        if usage is None and isinstance(data.get("message"), dict):
            usage = data["message"].get("usage")  # Anthropic's message_start
        into = read_usage(usage, into)
    return into
