"""A streamed answer assembled for the audit log from the events the client was sent."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.config.model import Policies
from sluicegate.guardrails.policy import compile_guard
from sluicegate.telemetry.audit import audit_row
from sluicegate.telemetry.bodies import Bodies, Transcript, clip
from sluicegate.telemetry.exchange import Exchange


def sse(*events: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return b"".join(head + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def test_openai_text_and_tool_calls() -> None:
    t = Transcript(10_000)
    t.feed(sse(chunk({"role": "assistant", "content": ""})))
    t.feed(sse(chunk({"content": "Let me "}), chunk({"content": "look."})))
    t.feed(
        sse(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "function": {"name": "get", "arguments": ""}}
                    ]
                }
            )
        )
    )
    t.feed(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})))
    t.feed(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]})))
    t.feed(sse(chunk({}, "tool_calls")) + b"data: [DONE]\n\n")
    assert orjson.loads(t.render()) == {
        "stream": True,
        "content": "Let me look.",
        "tool_calls": [{"id": "call_1", "name": "get", "arguments": '{"city":"Oslo"}'}],
        "finish_reason": "tool_calls",
    }


def test_openai_several_choices_and_legacy_completions() -> None:
    t = Transcript(10_000)
    t.feed(sse(chunk({"content": "a"}, index=0), chunk({"content": "b"}, index=1)))
    t.feed(sse({"object": "text_completion", "choices": [{"index": 0, "text": "!"}]}))
    out = orjson.loads(t.render())
    assert [c["content"] for c in out["choices"]] == ["a!", "b"]


def test_anthropic_events() -> None:
    t = Transcript(10_000)
    t.feed(sse({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}))
    t.feed(
        sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "thinking", "thinking": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
            },
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}},
            {"type": "message_stop"},
        )
    )
    assert orjson.loads(t.render()) == {
        "stream": True,
        "content": "Hi",
        "reasoning": "hmm",
        "tool_calls": [{"id": "toolu_1", "name": "get", "arguments": '{"a": 1}'}],
        "finish_reason": "tool_use",
    }


def test_collecting_stops_at_the_limit() -> None:
    t = Transcript(10)
    for _ in range(100):
        t.feed(sse(chunk({"content": "12345"})))
    out = orjson.loads(t.render())
    assert out["content"] == "1234512345" and out["incomplete"] is True


def test_unreadable_events_are_skipped() -> None:
    t = Transcript(100)
    t.feed(b"data: {not json\n\n: a comment\n\ndata: 5\n\n" + sse(chunk({"content": "ok"})))
    assert orjson.loads(t.render())["content"] == "ok"


def test_clip() -> None:
    assert clip(None, 5) == (None, None)
    assert clip(b"abc", 5) == ("abc", False)
    assert clip("aé".encode(), 2) == ("a", True)  # the half character goes
    assert clip(b"\xff\x00", 5) == ("\ufffd\ufffd", False)


def test_bodies_are_scrubbed_before_the_cap() -> None:
    guard = compile_guard(Policies.model_validate({"guardrails": {"pii": {"email": "log"}}}))
    assert guard is not None
    ex = Exchange("r", "default", "chat", "openai")
    ex.screen = guard.begin("openai", "chat")
    ex.bodies = Bodies(b'{"to": "ann@example.com", "pad": "' + b"x" * 50 + b'"}', 20)
    ex.bodies.response = b'{"ok": true}'
    row = audit_row(ex, 20)
    assert row[-4:] == ('{"to":"[EMAIL_1]","p', '{"ok": true}', True, False)
    assert audit_row(Exchange("r", "default", "chat", "openai"))[-4:] == (None, None, None, None)
