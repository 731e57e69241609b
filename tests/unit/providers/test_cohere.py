"""The Cohere adapter against golden fixtures, and its stream decoder against any chunking."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config.model import Service
from sluicegate.errors import InvalidRequest, UpstreamError, UpstreamStatusError
from sluicegate.providers.cohere import CohereAdapter, translate_request
from sluicegate.providers.cohere_embed import encode_embedding, translate_embeddings_request
from tests.unit.providers.streams import feed_raising

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "cohere"
ADAPTER = CohereAdapter()
BASE = "https://api.cohere.com/v2"


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
    built = ADAPTER.build("chat", case["canonical"], b"", case["model"], BASE)
    assert built.url == BASE + "/chat"
    assert built.stream is (case["canonical"].get("stream") is True)
    assert built.headers["accept"] == ("text/event-stream" if built.stream else "application/json")
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


@pytest.mark.parametrize(("name", "case"), cases("stream"))
def test_stream_translation_for_every_split_point(name: str, case: dict[str, Any]) -> None:
    raw = case["provider_stream"].encode()
    for cut in range(len(raw) + 1):
        decoder = ADAPTER.stream_decoder("chat", case["model"])
        chunks = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:])
        assert without_created(chunks) == case["expected"], cut


@pytest.mark.parametrize(("name", "case"), cases("embeddings_request"))
def test_embeddings_request_translation(name: str, case: dict[str, Any]) -> None:
    built = ADAPTER.build("embeddings", case["canonical"], b"", case["model"], BASE)
    assert built.url == BASE + "/embed"
    assert not built.stream
    assert json.loads(built.body) == case["expected"]


@pytest.mark.parametrize(("name", "case"), cases("embeddings_response"))
def test_embeddings_response_translation(name: str, case: dict[str, Any]) -> None:
    decoded = ADAPTER.decode("embeddings", json.dumps(case["provider"]).encode())
    assert decoded == case["expected"]


def test_base64_embeddings_are_little_endian_float32() -> None:
    vector = [0.5, -0.25, 1.0, 3.0]
    raw = base64.b64decode(encode_embedding(vector))
    assert list(struct.unpack("<4f", raw)) == vector


def test_an_error_reported_at_message_end_is_raised() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    decoder.feed(b'data: {"type":"message-start","id":"x"}\n\n')
    end = b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"ERROR",'
    end += b'"error":"Overloaded: busy"}}\n\n'
    with pytest.raises(UpstreamError) as info:
        feed_raising(decoder, end)
    assert "Overloaded: busy" in info.value.message
    assert not decoder.finished


def test_a_failed_generation_in_a_whole_answer_is_unreadable() -> None:
    body = b'{"id":"x","finish_reason":"ERROR","message":{"role":"assistant"}}'
    with pytest.raises(ValueError):
        ADAPTER.decode("chat", body)


def test_billed_units_are_the_fallback_for_usage() -> None:
    body = (
        b'{"id":"x","finish_reason":"COMPLETE","message":{"content":[{"type":"text","text":"a"}]},'
    )
    body += b'"usage":{"billed_units":{"input_tokens":4,"output_tokens":1}}}'
    usage = ADAPTER.decode("chat", body)["usage"]
    assert usage == {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
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
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": {"type": "function", "function": {"name": "b"}},
            },
            "tool_choice",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": "sometimes",
            },
            "tool_choice",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
            "response_format",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]}, "stop"),
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
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
            "messages[0].tool_calls[0]",
        ),
    ],
)
def test_untranslatable_requests_are_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate_request({"model": "m", **body}, "m")
    assert info.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": "x", "input_type": "poem"}, "input_type"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_untranslatable_embeddings_are_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate_embeddings_request({"model": "m", **body}, "m")
    assert info.value.param == param


def test_an_empty_assistant_turn_is_left_out() -> None:
    out = translate_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "b"},
            ],
        },
        "m",
    )
    assert [m["role"] for m in out["messages"]] == ["user", "user"]


@pytest.mark.parametrize(
    "message",
    [
        "too many tokens: size limit exceeded by 1711 tokens. Try using shorter or fewer inputs.",
        "too many tokens: total number of tokens in the prompt cannot exceed 4081",
        "Your request exceeds the model's context length.",
    ],
)
def test_context_length_error_gets_its_code(message: str) -> None:
    error = ADAPTER.error(400, {}, json.dumps({"id": "x", "message": message}).encode())
    assert isinstance(error, UpstreamStatusError)
    assert error.code == "context_length_exceeded"
    assert error.http_status == 400
    assert error.message == message


def test_rate_limit_keeps_retry_after() -> None:
    body = b'{"id":"x","message":"You are using a Trial key, which is limited to 10 calls / min"}'
    error = ADAPTER.error(429, {"retry-after": "12"}, body)
    assert error.http_status == 429
    assert error.headers == {"retry-after": "12"}
    assert error.openai_body()["error"]["type"] == "rate_limit_error"


def test_invalid_token_status_is_a_credentials_failure_naming_the_service() -> None:
    adapter = CohereAdapter.for_service(Service(name="co-prod", provider="cohere"))
    error = adapter.error(498, {}, b'{"id":"x","message":"invalid api token"}')
    assert error.http_status == 502
    assert error.code == "upstream_auth_failed"
    assert "co-prod" in error.message
