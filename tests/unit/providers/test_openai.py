"""The OpenAI adapter: bytes pass through for OpenAI clients; others get a clean body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import UpstreamError
from sluicegate.providers.openai import OpenAIAdapter
from sluicegate.providers.openai_stream import ToolCallDeltas
from tests.unit.providers.streams import feed_raising

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "openai"
ADAPTER = OpenAIAdapter()


def case(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_an_openai_clients_bytes_pass_through() -> None:
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x-unknown":1}'
    built = ADAPTER.build("chat", json.loads(raw), raw, "gpt-4o-mini", "https://api.openai.com/v1")
    assert built.body is raw
    assert built.url == "https://api.openai.com/v1/chat/completions"


def test_a_translated_body_drops_fields_openai_refuses() -> None:
    fixture = case("request_translated_from_anthropic.json")
    built = ADAPTER.build("chat", fixture["canonical"], b"", fixture["model"], "https://h/v1")
    assert json.loads(built.body) == fixture["expected"]
    assert built.stream and built.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("size", [1, 2, 5, 17, 100, 10_000])
def test_the_stream_decodes_the_same_for_any_chunking(size: int) -> None:
    fixture = case("stream_text_and_tool.json")
    raw = fixture["provider_stream"].encode()
    decoder = ADAPTER.stream_decoder("chat", fixture["model"])
    chunks: list[dict[str, Any]] = []
    for start in range(0, len(raw), size):
        chunks += decoder.feed(raw[start : start + size])
    assert chunks == fixture["expected"]
    assert decoder.finished


def test_an_error_event_in_the_stream_is_raised() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    with pytest.raises(UpstreamError, match="overloaded"):
        feed_raising(decoder, b'data: {"error": {"message": "overloaded", "code": "busy"}}\n\n')


@pytest.mark.parametrize("endpoint", ["completions", "embeddings"])
def test_other_endpoints(endpoint: str) -> None:
    built = ADAPTER.build(endpoint, {"model": "m"}, b'{"model":"m"}', "m", "https://h/v1")
    assert built.url == f"https://h/v1/{endpoint}"


STREAM = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        (None, {"include_usage": True}),
        ({"include_usage": False}, {"include_usage": True}),
        ({"include_obfuscation": False}, {"include_obfuscation": False, "include_usage": True}),
    ],
)
def test_a_stream_asks_for_its_usage_whatever_the_client_asked(
    options: dict[str, Any] | None, sent: dict[str, Any]
) -> None:
    body = {**STREAM, **({} if options is None else {"stream_options": options})}
    raw = json.dumps(body).encode()
    for client_bytes in (raw, b""):  # an OpenAI client's, another dialect's
        built = ADAPTER.build("chat", body, client_bytes, "gpt-4o", "https://h/v1")
        assert json.loads(built.body) == {**body, "model": "gpt-4o", "stream_options": sent}
    assert body.get("stream_options") == options  # the client's request is left as it was


def test_a_stream_that_asked_and_a_whole_answer_go_as_sent() -> None:
    asked = {**STREAM, "stream_options": {"include_usage": True}}
    raw = json.dumps(asked).encode()
    assert ADAPTER.build("chat", asked, raw, "m", "https://h/v1").body is raw
    whole = {**STREAM, "stream": False}
    raw = json.dumps(whole).encode()
    assert ADAPTER.build("chat", whole, raw, "m", "https://h/v1").body is raw


def test_mistral_is_sent_no_stream_options() -> None:
    mistral = OpenAIAdapter("mistral")
    asked = {**STREAM, "stream_options": {"include_usage": True}}
    built = mistral.build("chat", asked, json.dumps(asked).encode(), "m", "https://h/v1")
    assert "stream_options" not in json.loads(built.body)
    raw = json.dumps(STREAM).encode()
    assert mistral.build("chat", STREAM, raw, "m", "https://h/v1").body is raw


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _calls(*deltas: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"choices": [{"index": 0, "delta": {"tool_calls": [d]}}]} for d in deltas]


REPEATED = _calls(
    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}},
    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ":1}"}},
)
ONCE = _calls(
    {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
    {"index": 0, "function": {"arguments": '{"a"'}},
    {"index": 0, "function": {"arguments": ":1}"}},
)


def test_repeated_tool_call_heads_are_taken_out_of_compatible_streams() -> None:
    deltas = ToolCallDeltas()
    chunks = [json.loads(json.dumps(c)) for c in REPEATED]
    assert [deltas.repair(c) for c in chunks] == [False, True, True]
    assert chunks == ONCE
    decoder = OpenAIAdapter("llama.cpp").stream_decoder("chat", "m")
    assert decoder.feed(b"".join(_event(c) for c in REPEATED)) == ONCE
    # OpenAI's own streams are read as they are.
    assert ADAPTER.stream_decoder("chat", "m").feed(b"".join(_event(c) for c in REPEATED)) == (
        REPEATED
    )


def test_a_relayed_stream_is_edited_only_where_needed() -> None:
    text = _event({"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None})
    usage = {"prompt_tokens": 1, "completion_tokens": 2}
    last = _event({"choices": [], "usage": usage})
    done = b"data: [DONE]\n\n"
    tools = {"model": "m", "messages": [], "stream": True, "tools": [{"type": "function"}]}
    compatible = OpenAIAdapter("llama.cpp").passthrough_edits("chat", tools)
    assert compatible is not None
    payload = text + b"".join(_event(c) for c in REPEATED) + last + done
    assert compatible.feed(payload) == text + b"".join(_event(c) for c in ONCE) + done
    # The client asked for usage, and OpenAI's own stream: nothing to change at all.
    asked = {**tools, "stream_options": {"include_usage": True}}
    assert ADAPTER.passthrough_edits("chat", asked) is None
    edits = ADAPTER.passthrough_edits("chat", tools)
    assert edits is not None
    assert edits.feed(text + last + done) == text + done
    # A usage riding on the finishing chunk (Mistral) is taken off it.
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    assert edits.feed(_event({**finish, "usage": usage}) + done) == _event(finish) + done
