"""The Gemini and Vertex adapters: golden fixtures, and stream decoding under any chunking."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.config.model import Service
from sluicegate.errors import (
    ConfigError,
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from sluicegate.providers.base import Adapter
from sluicegate.providers.gemini import (
    GeminiAdapter,
    GeminiStream,
    VertexAdapter,
    embeddings_response,
)
from sluicegate.providers.gemini_request import join_call_id, split_call_id, translate_request
from tests.unit.providers.streams import feed_raising

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
ADAPTERS: dict[str, tuple[Adapter, str]] = {
    "gemini": (
        GeminiAdapter(allow_gs_uris=True),
        "https://generativelanguage.googleapis.com/v1beta",
    ),
    "vertex": (
        VertexAdapter("my-project", "europe-west4", allow_gs_uris=True),
        "https://europe-west4-aiplatform.googleapis.com/v1",
    ),
}


def cases(*kinds: str) -> list[Any]:
    found = []
    for provider in ADAPTERS:
        for path in sorted((FIXTURES / provider).glob("*.json")):
            case = json.loads(path.read_text())
            if case["kind"] in kinds:
                found.append(pytest.param(provider, case, id=f"{provider}/{path.stem}"))
    return found


def without_created(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: without_created(v) for k, v in data.items() if k != "created"}
    if isinstance(data, list):
        return [without_created(v) for v in data]
    return data


@pytest.mark.parametrize(("provider", "case"), cases("request", "embeddings_request"))
def test_request_translation(provider: str, case: dict[str, Any]) -> None:
    adapter, base = ADAPTERS[provider]
    endpoint = "chat" if case["kind"] == "request" else "embeddings"
    built = adapter.build(endpoint, case["canonical"], b"", case["model"], base)
    assert built.url == case["expected_url"]
    assert built.params == case["expected_params"]
    assert built.stream is (case["canonical"].get("stream") is True)
    assert built.headers["content-type"] == "application/json"
    assert json.loads(built.body) == case["expected"]


@pytest.mark.parametrize(("provider", "case"), cases("response", "embeddings_response"))
def test_response_translation(provider: str, case: dict[str, Any]) -> None:
    adapter, _ = ADAPTERS[provider]
    endpoint = "chat" if case["kind"] == "response" else "embeddings"
    decoded = adapter.decode(endpoint, json.dumps(case["provider"]).encode())
    assert without_created(decoded) == case["expected"]


@pytest.mark.parametrize(("provider", "case"), cases("stream"))
def test_stream_is_the_same_for_any_chunking(provider: str, case: dict[str, Any]) -> None:
    adapter, _ = ADAPTERS[provider]
    raw = case["provider_stream"].encode()

    def run(pieces: list[bytes]) -> list[dict[str, Any]]:
        decoder = adapter.stream_decoder("chat", case["model"])
        chunks: list[dict[str, Any]] = []
        for piece in pieces:
            chunks += decoder.feed(piece)
        assert decoder.finished
        return without_created(chunks)  # type: ignore[no-any-return]

    assert run([raw]) == case["expected"]
    assert run([raw[i : i + 1] for i in range(len(raw))]) == case["expected"]
    for cut in range(1, len(raw)):
        assert run([raw[:cut], raw[cut:]]) == case["expected"], cut


# ---------------------------------------------------------------- requests
USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "x"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[1].tool_call_id",
        ),
        ({"messages": [USER], "tools": [{"type": "function"}]}, "tools[0]"),
        ({"messages": [USER], "tools": [{"type": "web_search"}]}, "tools[0]"),
        (
            {
                "messages": [USER],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "sometimes",
            },
            "tool_choice",
        ),
        ({"messages": [USER], "response_format": {"type": "yaml"}}, "response_format"),
        ({"messages": [USER], "reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"messages": [USER], "n": 0}, "n"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{x"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_untranslatable_requests_are_400(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate_request({"model": "m", **body})
    assert info.value.param == param


def test_tool_results_are_named_after_the_nearest_earlier_call_with_that_id() -> None:
    def call(name: str) -> dict[str, Any]:
        return {"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}

    out = translate_request(
        {
            "messages": [
                USER,
                {"role": "assistant", "tool_calls": [call("first")]},
                {"role": "tool", "tool_call_id": "call_0", "content": "1"},
                {"role": "assistant", "tool_calls": [call("second")]},
                {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"},
                {"role": "function", "name": "legacy", "content": "not json {"},
            ]
        }
    )
    responses = [
        p["functionResponse"]
        for c in out["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]
    assert responses == [
        {"name": "first", "response": {"content": "1"}},  # only objects and arrays are parsed
        {"name": "second", "response": {"content": [1, 2]}},
        {"name": "legacy", "response": {"content": "not json {"}},
    ]


def test_audio_and_file_parts_become_inline_data() -> None:
    out = translate_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "mp3"}},
                        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    ],
                }
            ]
        }
    )
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/mp3", "data": "AAA="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
    ]


def test_reasoning_effort_none_turns_thinking_off() -> None:
    out = translate_request({"messages": [USER], "reasoning_effort": "none"})
    assert out["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 0,
        "includeThoughts": False,
    }


@pytest.mark.parametrize("signature", ["CiQB0e2Kb+/xYw==", "abc", "ab/+cQ==", "A" * 300])
def test_thought_signatures_round_trip_through_tool_call_ids(signature: str) -> None:
    call_id = join_call_id("call_3", signature)
    assert set(call_id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    head, back = split_call_id(call_id)
    assert head == "call_3"
    assert base64.b64decode(back or "") == base64.b64decode(signature + "=" * (-len(signature) % 4))
    assert split_call_id("call_a") == ("call_a", None)


@pytest.mark.parametrize(
    ("adapter", "model", "url"),
    [
        (GeminiAdapter(), "gemini-2.5-flash", "B/models/gemini-2.5-flash:generateContent"),
        (GeminiAdapter(), "models/gemini-2.5-flash", "B/models/gemini-2.5-flash:generateContent"),
        (GeminiAdapter(), "tunedModels/my-tune", "B/tunedModels/my-tune:generateContent"),
        (
            VertexAdapter("p", "us-east5"),
            "gemini-2.5-pro@001",
            "B/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro@001:generateContent",
        ),
        (
            VertexAdapter("p", "us-east5"),
            "projects/p/locations/us-east5/endpoints/123",
            "B/projects/p/locations/us-east5/endpoints/123:generateContent",
        ),
    ],
)
def test_model_urls(adapter: Adapter, model: str, url: str) -> None:
    assert adapter.build("chat", {"messages": [USER]}, b"", model, "B").url == url


def test_vertex_needs_a_project() -> None:
    service = Service.model_construct(name="v", provider="vertex", project=None, location=None)
    with pytest.raises(ValueError, match="project"):
        VertexAdapter.for_service(service)
    with pytest.raises(ConfigError) as info:
        parse_config({"services": [{"name": "v", "provider": "vertex"}]}, env={})
    assert "vertex service needs project" in str(info.value)
    made = VertexAdapter.for_service(Service(name="v", provider="vertex", project="p"))
    assert (made.project, made.location) == ("p", "us-central1")


@pytest.mark.parametrize(
    "body",
    [
        {"input": [[1, 2, 3]]},
        {"input": "x", "dimensions": 0},
        {"input": "x", "encoding_format": "int8"},
    ],
)
def test_untranslatable_embeddings_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        GeminiAdapter().build("embeddings", {"model": "e", **body}, b"", "e", "B")


def test_base64_embeddings_are_little_endian_float32() -> None:
    out = embeddings_response([[0.5, -1.0, 0.25]], "e", 2, "base64")
    raw = base64.b64decode(out["data"][0]["embedding"])
    assert struct.unpack("<3f", raw) == (0.5, -1.0, 0.25)
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


# ---------------------------------------------------------------- answers and streams
def test_a_blocked_prompt_is_a_400_content_filter() -> None:
    body = b'{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}'
    with pytest.raises(InvalidRequest) as info:
        GeminiAdapter().decode("chat", body)
    assert info.value.code == "content_filter"
    assert "PROHIBITED_CONTENT" in info.value.message
    with pytest.raises(InvalidRequest):
        feed_raising(GeminiStream("m"), b"data: " + body + b"\r\n\r\n")


def test_an_answer_without_candidates_is_unreadable() -> None:
    with pytest.raises(ValueError):
        GeminiAdapter().decode("chat", b'{"usageMetadata": {}}')


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


def test_usage_after_the_finish_event_completes_the_stream() -> None:
    decoder = GeminiStream("m")
    finish = {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}
    chunks = decoder.feed(_event(finish))
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert not decoder.finished
    usage = {"usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}}
    (last,) = decoder.feed(_event(usage))
    assert decoder.finished
    assert last["usage"]["total_tokens"] == 3
    assert decoder.feed(_event(usage)) == []


def test_a_stream_cut_before_its_finish_is_not_finished() -> None:
    decoder = GeminiStream("m")
    decoder.feed(
        _event(
            {
                "candidates": [{"content": {"parts": [{"text": "hi"}]}}],
                "usageMetadata": {"promptTokenCount": 1},
            }
        )
    )
    assert not decoder.finished


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (
            {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"},
            UpstreamError,
            "unavailable",
        ),
        (
            {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"},
            RateLimited,
            "rate_limit_exceeded",
        ),
        (
            {"code": 400, "message": "input too long", "status": "INVALID_ARGUMENT"},
            InvalidRequest,
            "context_length_exceeded",
        ),
    ],
)
def test_errors_inside_a_stream(error: dict[str, Any], kind: type[GatewayError], code: str) -> None:
    decoder = GeminiStream("m")
    decoder.feed(_event({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}))
    with pytest.raises(kind) as info:
        feed_raising(decoder, _event({"error": error}))
    assert info.value.code == code
    assert error["message"] in info.value.message


# ---------------------------------------------------------------- errors
def _error(status: int, message: str, **extra: Any) -> bytes:
    names = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 404: "NOT_FOUND"}
    return json.dumps(
        {"error": {"code": status, "message": message, "status": names[status], **extra}}
    ).encode()


@pytest.mark.parametrize(
    "message",
    [
        "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576).",
        "Request payload is too long",
    ],
)
def test_context_length_errors_get_their_code(message: str) -> None:
    error = GeminiAdapter().error(400, {}, _error(400, message))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.code) == (400, "context_length_exceeded")
    assert error.openai_body()["error"]["type"] == "invalid_request_error"


def test_rate_limits_keep_429_and_a_retry_after() -> None:
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.2s"}
    body = _error(429, "Resource has been exhausted", details=[retry])
    error = GeminiAdapter().error(429, {}, body)
    assert (error.http_status, error.code, error.headers) == (
        429,
        "rate_limit_exceeded",
        {"retry-after": "38"},
    )
    assert GeminiAdapter().error(429, {"retry-after": "5"}, body).headers == {"retry-after": "5"}
    assert GeminiAdapter().error(429, {}, _error(429, "quota")).headers == {}


def test_an_invalid_api_key_is_the_gateways_problem() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    error = GeminiAdapter().error(400, {}, _error(400, "API key not valid.", details=[info]))
    assert isinstance(error, UpstreamError)
    assert (error.http_status, error.code) == (502, "upstream_auth_failed")


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'[{"error": {"code": 404, "message": "no model", "status": "NOT_FOUND"}}]',
            "no model",
            "not_found",
        ),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>", None),
        (b"", "the provider answered 404", None),
    ],
)
def test_odd_error_bodies(body: bytes, message: str, code: str | None) -> None:
    error = VertexAdapter("p").error(404, {}, body)
    assert (error.http_status, error.message, error.code) == (404, message, code)
