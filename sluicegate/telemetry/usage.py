"""Token usage, read from whatever shape the answer came in.

OpenAI's usage (``prompt_tokens`` including cached ones, details for cached
and reasoning tokens) and Anthropic's (``input_tokens`` excluding cache reads
and writes) both reduce to ``TokenCounts``. Streams report usage in pieces
(Anthropic: input in ``message_start``, output in ``message_delta``), so
counts merge.

When a provider reports no usage, the gateway counts the generated text
instead: ``text_size`` measures the string values of the fields that carry
generated text straight from the JSON bytes (a few ``find`` calls, no parse),
and ``estimated_output`` turns a size into tokens at about four characters
per token (docs/limits.md). Such counts are marked (``estimated``): the audit
log keeps them apart as ``usage_source: counted`` (docs/observability.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

CHARS_PER_TOKEN = 4

# The JSON fields whose string values are generated text, per dialect: OpenAI's
# content, reasoning, refusals, tool-call arguments and legacy completions;
# Anthropic's text, thinking and tool-input deltas. A field's marker begins
# with its quote, so e.g. "cited_text" never counts as "text".
_TEXT_FIELDS = {
    "openai": (b"content", b"reasoning_content", b"refusal", b"arguments", b"text"),
    "anthropic": (b"text", b"thinking", b"partial_json"),
    "responses": (b"delta",),  # each text and arguments delta of the semantic events
}
_BACKSLASH = 0x5C
# An event whose "usage" holds an object (OpenAI's chunks say "usage":null until the last).
USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


@dataclass(slots=True)
class TokenCounts:
    input: int = 0  # every prompt token, cached ones included
    output: int = 0  # every completion token, reasoning included
    cached: int = 0  # prompt tokens read from the provider's cache
    cache_write: int = 0  # prompt tokens written to the provider's cache
    reasoning: int = 0
    audio: int = 0  # prompt tokens that are audio (gpt-4o-transcribe prices them apart)
    estimated: bool = False  # counted by the gateway: the provider reported none

    @property
    def source(self) -> str:
        """Where the counts come from, as the audit log says it: provider or counted."""
        return "counted" if self.estimated else "provider"


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
    if "input_tokens_details" in usage or "output_tokens_details" in usage:
        # The Responses API's: input_tokens include the cached ones, as OpenAI's chat does.
        counts.input = _int(usage.get("input_tokens")) or counts.input
        counts.output = _int(usage.get("output_tokens")) or counts.output
        details = usage.get("input_tokens_details") or {}
        counts.cached = _int(details.get("cached_tokens")) or counts.cached
        reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
        counts.reasoning = _int(reasoning) or counts.reasoning
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


def usage_of_events(payload: bytes, into: TokenCounts | None) -> TokenCounts | None:
    """Merge the usage found in relayed SSE events (split at blank lines).

    Only the events where a ``"usage"`` key holds an object are parsed: OpenAI's
    chunks carry ``"usage":null`` in every event but the last, and a search in C
    over the whole payload is far cheaper than looking at each event."""
    end = 0
    for match in USAGE_OBJECT.finditer(payload):
        if match.start() < end:
            continue  # a second usage in an event already read
        start = payload.rfind(b"\n\n", 0, match.start())
        start = 0 if start < 0 else start + 2
        end = payload.find(b"\n\n", match.end())
        if end < 0:
            end = len(payload)
        into = _usage_of_event(payload[start:end], into)
    return into


def _usage_of_event(event: bytes, into: TokenCounts | None) -> TokenCounts | None:
    start = event.find(b"data:")
    if start < 0:
        return into
    try:
        data = orjson.loads(event[start + 5 :])
    except orjson.JSONDecodeError:
        return into
    if not isinstance(data, dict):
        return into
    usage = data.get("usage")
    if usage is None and isinstance(data.get("message"), dict):
        usage = data["message"].get("usage")  # Anthropic's message_start
    if usage is None and isinstance(data.get("response"), dict):
        usage = data["response"].get("usage")  # the Responses API's response.completed
    return read_usage(usage, into)


def text_markers(dialect: str, sample: bytes) -> tuple[bytes, ...]:
    """What ``text_size`` looks for in ``dialect``'s JSON; ``sample`` (the first bytes
    seen) tells whether it puts a space after colons, as some servers do."""
    names = _TEXT_FIELDS.get(dialect, _TEXT_FIELDS["openai"])
    markers = tuple(b'"' + name + b'":"' for name in names)
    if b'": "' in sample:
        markers += tuple(b'"' + name + b'": "' for name in names)
    return markers


def text_size(payload: bytes, markers: tuple[bytes, ...]) -> int:
    """Bytes of generated text in JSON ``payload``, escapes counted as sent."""
    size = 0
    find = payload.find
    for marker in markers:
        at = find(marker)
        while at >= 0:
            start = at + len(marker)
            end = find(b'"', start)
            while end > 0 and payload[end - 1] == _BACKSLASH:
                back = end - 2
                while payload[back] == _BACKSLASH:
                    back -= 1
                if (end - back) % 2:  # an even run of backslashes: this quote ends the string
                    break
                end = find(b'"', end + 1)
            if end < 0:
                break
            size += end - start
            at = find(marker, end + 1)
    return size


def text_size_of_chunk(chunk: dict[str, Any]) -> int:
    """Characters of generated text in one canonical (OpenAI) stream chunk."""
    size = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        for name in ("content", "reasoning_content", "refusal"):
            value = delta.get(name)
            if isinstance(value, str):
                size += len(value)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                size += len(arguments)
        text = choice.get("text")
        if isinstance(text, str):
            size += len(text)
    return size


def estimated_output(size: int) -> int:
    """Output tokens for ``size`` characters of generated text, rounded up."""
    return -(-size // CHARS_PER_TOKEN)


def counted_usage(prompt: int, text_size: int) -> TokenCounts:
    """The usage of an answer whose provider reported none: ``prompt`` tokens as counted
    before the call, the output from the size of the text generated; marked as counted."""
    return TokenCounts(prompt, estimated_output(text_size), estimated=True)
