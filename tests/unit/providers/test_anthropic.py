"""The Anthropic adapter against golden fixtures, and its stream decoder against any chunking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import InvalidRequest, UpstreamStatusError
from sluicegate.providers.anthropic import AnthropicAdapter, translate_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "anthropic"
ADAPTER = AnthropicAdapter()


def cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        case = json.loads(path.read_text())
        if case["kind"] == kind:
            found.append((path.stem, case))
    return found


def without_created(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_created(v) for k, v in data.items() if k != "created"}
    if isinstance(data, list):
        return [without_created(v) for v in data]
    return data


@pytest.mark.parametrize(("name", "case"), cases("request"))
def test_request_translation(name: str, case: dict[str, Any]) -> None:
    built = ADAPTER.build(
        "chat", case["canonical"], b"", case["model"], "https://api.anthropic.com/v1"
    )
    assert built.url == "https://api.anthropic.com/v1/messages"
    assert built.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(built.body) == case["expected"]


@pytest.mark.parametrize(("name", "case"), cases("response"))
def test_response_translation(name: str, case: dict[str, Any]) -> None:
    decoded = ADAPTER.decode("chat", json.dumps(case["provider"]).encode())
    assert without_created(decoded) == case["expected"]


@pytest.mark.parametrize(("name", "case"), cases("stream"))
def test_stream_translation_is_the_same_for_any_chunking(name: str, case: dict[str, Any]) -> None:
    raw = case["provider_stream"].encode()
    for size in (len(raw), 1, 2, 3, 7, 64, 500):
        decoder = ADAPTER.stream_decoder("chat", case["model"])
        chunks: list[dict[str, Any]] = []
        for start in range(0, len(raw), size):
            chunks += decoder.feed(raw[start : start + size])
        assert decoder.finished
        assert without_created(chunks) == case["expected"], size


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            "tools[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_untranslatable_requests_are_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate_request({"model": "m", **body}, "m")
    assert info.value.param == param


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    out = translate_request(
        {
            "model": "m",
            "reasoning_effort": "high",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "x"}],
        },
        "m",
    )
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert out["max_tokens"] > 16384


def test_context_length_error_gets_its_code() -> None:
    body = (
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"prompt is too long: 300 > 200"}}'
    )
    error = ADAPTER.error(400, {}, body)
    assert isinstance(error, UpstreamStatusError)
    assert error.code == "context_length_exceeded"
    assert error.http_status == 400


def test_rate_limit_keeps_retry_after() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    error = ADAPTER.error(429, {"retry-after": "12"}, body)
    assert error.http_status == 429
    assert error.headers == {"retry-after": "12"}
    assert error.openai_body()["error"]["type"] == "rate_limit_error"


THINKING = {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"}


def test_thinking_blocks_handed_back_go_first_in_their_turn() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "reasoning_blocks": [THINKING, {"type": "redacted_thinking", "data": "x"}],
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        ]
    }
    turn = translate_request(body, "claude")["messages"][1]
    kinds = [block["type"] for block in turn["content"]]
    assert kinds == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert turn["content"][0] == THINKING


def test_a_streamed_thinking_block_comes_whole_with_its_signature() -> None:
    def event(payload: dict[str, Any]) -> bytes:
        return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()

    decoder = ADAPTER.stream_decoder("chat", "claude")
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}
    deltas = [
        {"type": "thinking_delta", "thinking": "Hm"},
        {"type": "thinking_delta", "thinking": "m."},
        {"type": "signature_delta", "signature": "sig-1"},
    ]
    data = event(start) + b"".join(
        event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas
    )
    chunks = decoder.feed(data + event({"type": "content_block_stop", "index": 0}))
    blocks = [c["choices"][0]["delta"].get("reasoning_blocks") for c in chunks]
    assert blocks[-1] == [THINKING]
    assert [b for b in blocks[:-1] if b] == []
