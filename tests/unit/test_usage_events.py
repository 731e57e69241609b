"""Usage read from relayed SSE events: only events whose usage is an object are parsed."""

from __future__ import annotations

import orjson

from sluicegate.telemetry.usage import TokenCounts, usage_of_events


def event(data: object, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def chunk(text: str) -> bytes:
    return event(
        {
            "object": "chat.completion.chunk",
            "choices": [{"delta": {"content": text}}],
            "usage": None,
        }
    )


USAGE = {
    "prompt_tokens": 24,
    "completion_tokens": 52,
    "prompt_tokens_details": {"cached_tokens": 4},
}


def test_an_openai_stream_counts_its_last_chunk_whatever_the_nulls_before() -> None:
    payload = b"".join(chunk(f"w{i}") for i in range(50))
    payload += event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})
    payload += b"data: [DONE]\n\n"
    assert usage_of_events(payload, None) == TokenCounts(input=24, output=52, cached=4)


def test_events_with_null_usage_leave_the_counts_alone() -> None:
    before = TokenCounts(input=3, output=5)
    assert usage_of_events(b"".join(chunk("x") for _ in range(5)), before) is before
    assert usage_of_events(b"".join(chunk("x") for _ in range(5)), None) is None


def test_anthropic_usage_merges_across_events_and_reads() -> None:
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 10, "cache_read_input_tokens": 5}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 7}}
    first = usage_of_events(event(start, "message_start"), None)
    assert first == TokenCounts(input=15, cached=5)
    merged = usage_of_events(event({"type": "ping"}, "ping") + event(delta, "message_delta"), first)
    assert merged == TokenCounts(input=15, output=7, cached=5)


def test_spaces_around_the_colon_are_usage_too() -> None:
    spaced = b'data: {"choices": [], "usage" :\n {"prompt_tokens": 1, "completion_tokens": 2}}\n\n'
    assert usage_of_events(spaced, None) == TokenCounts(input=1, output=2)


def test_usage_quoted_inside_generated_text_is_not_usage() -> None:
    text = chunk('the "usage":{"prompt_tokens": 99} field')
    assert b'\\"usage\\":{' in text
    assert usage_of_events(text, None) is None


def test_an_event_that_is_not_json_is_skipped() -> None:
    broken = b'data: {"usage":{"prompt_tokens": 1\n\n'
    good = event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}})
    assert usage_of_events(broken + good, None) == TokenCounts(input=2, output=3)


def test_the_responses_apis_usage_in_its_completed_event() -> None:
    usage = {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 30},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 52,
    }
    delta = event(
        {"type": "response.output_text.delta", "delta": "hi"}, "response.output_text.delta"
    )
    done = event({"type": "response.completed", "response": {"usage": usage}}, "response.completed")
    counts = usage_of_events(delta + done, None)
    assert counts is not None
    assert (counts.input, counts.cached, counts.output, counts.reasoning) == (40, 30, 12, 5)
