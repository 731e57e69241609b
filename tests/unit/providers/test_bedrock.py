"""The Bedrock adapter against golden fixtures; its event-stream decoder against any chunking."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    NoHealthyUpstream,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from sluicegate.providers.bedrock import BedrockAdapter, translate_request
from sluicegate.providers.bedrock_embeddings import embeddings_request
from tests.fakes.bedrock_server import event, exception, frame
from tests.unit.providers.streams import feed_raising

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "bedrock"
ADAPTER = BedrockAdapter()
BASE = "https://bedrock-runtime.us-east-1.amazonaws.com"


def cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        case = json.loads(path.read_text())
        if case["kind"] == kind:
            found.append((path.stem, case))
    return found


def without_ids(data: Any) -> Any:
    """Bedrock names no completion id, so each answer gets a fresh one (and a clock)."""
    if isinstance(data, list):
        return [without_ids(v) for v in data]
    assert str(data.get("id", "chatcmpl-")).startswith("chatcmpl-")
    return {k: v for k, v in data.items() if k not in ("id", "created")}


def decode_all(raw: bytes, model: str, pieces: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    decoder = ADAPTER.stream_decoder("chat", model)
    chunks: list[dict[str, Any]] = []
    for piece in pieces:
        chunks += decoder.feed(piece)
    assert b"".join(pieces) == raw
    return chunks, decoder.finished


# ---------------------------------------------------------------- golden fixtures
@pytest.mark.parametrize(("name", "case"), cases("request"))
def test_request_translation(name: str, case: dict[str, Any]) -> None:
    built = ADAPTER.build(case["endpoint"], case["canonical"], b"", case["model"], BASE)
    assert built.method == "POST"
    assert built.url == case["expected_url"]
    assert built.headers["accept"] == case["expected_accept"]
    assert built.headers["content-type"] == "application/json"
    assert built.stream is (case["canonical"].get("stream") is True)
    assert json.loads(built.body) == case["expected"]


@pytest.mark.parametrize(("name", "case"), cases("response"))
def test_response_translation(name: str, case: dict[str, Any]) -> None:
    decoded = ADAPTER.decode(
        case["endpoint"], json.dumps(case["provider"]).encode(), case["model"], case.get("request")
    )
    assert without_ids(decoded) == case["expected"]


@pytest.mark.parametrize(("name", "case"), cases("stream"))
def test_stream_fixture_bytes_are_the_listed_events(name: str, case: dict[str, Any]) -> None:
    """The fixture's bytes are real AWS event-stream framing (read back by botocore)."""
    buffer = EventStreamBuffer()
    buffer.add_data(base64.b64decode(case["provider_stream_base64"]))
    frames = [m.to_response_dict() for m in buffer]
    assert [f["headers"][":event-type"] for f in frames] == [
        e["event"] for e in case["provider_events"]
    ]
    for got, listed in zip(frames, case["provider_events"], strict=True):
        payload = orjson.loads(got["body"])
        payload.pop("p")  # Bedrock's padding
        assert payload == listed["payload"]


@pytest.mark.parametrize(("name", "case"), cases("stream"))
def test_stream_translation_is_the_same_for_any_chunking(name: str, case: dict[str, Any]) -> None:
    raw = base64.b64decode(case["provider_stream_base64"])
    splits = [[raw], [raw[i : i + 1] for i in range(len(raw))]]
    splits += [[raw[:k], raw[k:]] for k in range(1, len(raw))]
    splits += [[raw[i : i + n] for i in range(0, len(raw), n)] for n in (2, 3, 7, 13, 64, 500)]
    first: list[dict[str, Any]] | None = None
    for pieces in splits:
        chunks, finished = decode_all(raw, case["model"], pieces)
        assert finished
        if first is None:
            first = chunks
            assert without_ids(chunks) == case["expected"]
        # One decoder's id is constant, so the whole output must match exactly.
        assert without_ids(chunks) == without_ids(first)
        assert len({c["id"] for c in chunks}) == 1


# ---------------------------------------------------------------- streams
_deltas = st.one_of(
    st.text(max_size=8).map(lambda t: {"text": t}),
    st.text(max_size=8).map(lambda t: {"toolUse": {"input": t}}),
    st.text(max_size=8).map(lambda t: {"reasoningContent": {"text": t}}),
)
_events = st.lists(
    st.one_of(
        st.tuples(st.just("contentBlockDelta"), st.integers(0, 3), _deltas),
        st.tuples(st.just("contentBlockStart"), st.integers(0, 3), st.text(max_size=5)),
        st.tuples(st.just("contentBlockStop"), st.integers(0, 3), st.none()),
    ),
    max_size=12,
)


def _frames(events: list[tuple[str, int, Any]]) -> bytes:
    raw = event("messageStart", {"role": "assistant"})
    for name, index, extra in events:
        payload: dict[str, Any] = {"contentBlockIndex": index}
        if name == "contentBlockDelta":
            payload["delta"] = extra
        elif name == "contentBlockStart":
            payload["start"] = {"toolUse": {"toolUseId": f"t{index}", "name": extra}}
        raw += event(name, payload)
    raw += event("messageStop", {"stopReason": "end_turn"})
    return raw + event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2}})


@settings(max_examples=150, deadline=None)
@given(events=_events, cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_any_event_sequence_decodes_the_same_however_it_is_cut(
    events: list[tuple[str, int, Any]], cuts: list[int]
) -> None:
    raw = _frames(events)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    whole, finished = decode_all(raw, "m", [raw])
    cut, cut_finished = decode_all(raw, "m", pieces)
    assert finished and cut_finished
    assert without_ids(cut) == without_ids(whole)


def test_stream_is_finished_only_after_message_stop_and_metadata() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    decoder.feed(event("messageStart", {"role": "assistant"}))
    decoder.feed(event("messageStop", {"stopReason": "end_turn"}))
    assert not decoder.finished
    decoder.feed(event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1}}))
    assert decoder.finished


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("throttlingException", RateLimited, 429),
        ("serviceUnavailableException", NoHealthyUpstream, 503),
        ("modelStreamErrorException", UpstreamError, 502),
        ("internalServerException", UpstreamError, 502),
        ("somethingNewException", UpstreamError, 502),
    ],
)
def test_exception_frames_become_our_errors(kind: str, error: type, status: int) -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    raw = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    raw += exception(kind, "it broke")
    with pytest.raises(error) as info:
        for i in range(len(raw)):
            feed_raising(decoder, raw[i : i + 1])
    assert info.value.http_status == status
    assert "it broke" in info.value.message
    assert not decoder.finished


def test_validation_exception_in_a_stream_keeps_context_length_code() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    with pytest.raises(GatewayError) as info:
        feed_raising(
            decoder, exception("validationException", "Input is too long for requested model.")
        )
    assert info.value.code == "context_length_exceeded"
    assert info.value.http_status == 400


def test_error_frames_become_upstream_errors() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    raw = frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    with pytest.raises(UpstreamError, match="boom"):
        feed_raising(decoder, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x00\x10\x00\x00\x00\x00garbagegarbage!!",  # a prelude with a wrong CRC
        frame({":message-type": "event", ":event-type": "messageStart"}, b"{not json"),
        frame({":message-type": "event", ":event-type": "contentBlockDelta"}, b"[1, 2]"),
        frame({":message-type": "event", ":event-type": "contentBlockDelta"}, b'{"delta": 3}'),
        event("contentBlockDelta", {"contentBlockIndex": 0}),
    ],
)
def test_unreadable_frames_are_value_errors(raw: bytes) -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    with pytest.raises(ValueError):
        decoder.feed(raw)


def test_corrupted_message_crc_is_a_value_error() -> None:
    raw = bytearray(event("messageStart", {"role": "assistant"}))
    raw[-1] ^= 0xFF
    with pytest.raises(ValueError):
        ADAPTER.stream_decoder("chat", "m").feed(bytes(raw))


# ---------------------------------------------------------------- provider errors
def _aws_error(kind: str, message: str) -> tuple[dict[str, str], bytes]:
    headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return headers, orjson.dumps({"message": message})


def test_throttling_is_429_keeping_retry_after() -> None:
    headers, body = _aws_error("ThrottlingException", "Too many requests, please wait.")
    error = ADAPTER.error(429, {**headers, "retry-after": "12"}, body)
    assert isinstance(error, RateLimited)
    assert error.http_status == 429
    assert error.headers == {"retry-after": "12"}
    assert "Too many requests" in error.message


@pytest.mark.parametrize(
    "message",
    [
        "Input is too long for requested model.",
        "The model returned the following errors: prompt is too long: 210000 tokens > 200000",
        "Too many input tokens. Max input tokens: 8192, request input token count: 9000",
    ],
)
def test_context_length_exceeded_gets_its_code(message: str) -> None:
    headers, body = _aws_error("ValidationException", message)
    error = ADAPTER.error(400, headers, body)
    assert isinstance(error, UpstreamStatusError)
    assert error.http_status == 400
    assert error.code == "context_length_exceeded"


def test_other_validation_errors_are_plain_400s() -> None:
    headers, body = _aws_error("ValidationException", "The provided model identifier is invalid.")
    error = ADAPTER.error(400, headers, body)
    assert error.http_status == 400
    assert error.code is None
    assert error.openai_body()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("status", "kind", "error_class", "client_status"),
    [
        (429, "ModelNotReadyException", NoHealthyUpstream, 503),
        (408, "ModelTimeoutException", UpstreamTimeout, 504),
        (424, "ModelErrorException", UpstreamError, 502),
        (404, "ResourceNotFoundException", UpstreamStatusError, 404),
    ],
)
def test_other_exceptions(status: int, kind: str, error_class: type, client_status: int) -> None:
    headers, body = _aws_error(kind, "details")
    error = ADAPTER.error(status, headers, body)
    assert isinstance(error, error_class)
    assert error.http_status == client_status


def test_error_without_header_or_json_still_reads() -> None:
    error = ADAPTER.error(400, {}, b"<html>bad gateway</html>")
    assert error.http_status == 400
    assert "bad gateway" in error.message
    typed = ADAPTER.error(429, {}, b'{"__type": "ThrottlingException", "Message": "slow"}')
    assert isinstance(typed, RateLimited)


# ---------------------------------------------------------------- requests Bedrock cannot take
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,Qk0="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, None),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]}, "stop"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            "tools[0]",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
            "tool_choice",
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
def test_untranslatable_requests_are_400(body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate_request({"model": "m", **body})
    if param is not None:
        assert info.value.param == param


def test_tool_choice_none_without_history_drops_the_tools() -> None:
    out = translate_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "none",
        }
    )
    assert "toolConfig" not in out


# ---------------------------------------------------------------- embeddings
@pytest.mark.parametrize(
    ("body", "model", "param"),
    [
        ({"input": ["a", "b"]}, "amazon.titan-embed-text-v2:0", "input"),
        ({"input": [[1, 2, 3]]}, "cohere.embed-english-v3", "input"),
        ({"input": "a"}, "amazon.nova-pro-v1:0", "model"),
        ({"input": "a", "dimensions": 256}, "cohere.embed-english-v3", "dimensions"),
        ({"input": "a", "input_type": "poetry"}, "cohere.embed-english-v3", "input_type"),
        ({"input": "a", "encoding_format": "int8"}, "cohere.embed-english-v3", "encoding_format"),
    ],
)
def test_untranslatable_embeddings_are_400(body: dict[str, Any], model: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        embeddings_request({"model": "e", **body}, model)
    assert info.value.param == param


def test_cohere_v4_takes_dimensions_and_inference_profiles_are_recognised() -> None:
    out = embeddings_request({"input": "a", "dimensions": 512}, "us.cohere.embed-v4:0")
    assert out == {"texts": ["a"], "input_type": "search_document", "output_dimension": 512}


def test_base64_embeddings_are_little_endian_float32() -> None:
    vector = [0.125, -3.5, 1e-3]
    body = orjson.dumps({"embedding": vector, "inputTextTokenCount": 1})
    out = ADAPTER.decode(
        "embeddings", body, "amazon.titan-embed-text-v2:0", {"encoding_format": "base64"}
    )
    packed = base64.b64decode(out["data"][0]["embedding"])
    assert list(struct.unpack("<3f", packed)) == pytest.approx(vector)


def test_answers_that_are_not_objects_are_value_errors() -> None:
    with pytest.raises(ValueError):
        ADAPTER.decode("chat", b"[1]")
    with pytest.raises(ValueError):
        ADAPTER.decode("embeddings", b'{"embeddings": [1, 2]}', "cohere.embed-english-v3")
