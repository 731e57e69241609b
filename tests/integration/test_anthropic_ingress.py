"""/v1/messages: the official anthropic SDK in front of any provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.gemini_server import GEMINI_KEY, FakeGemini
from tests.fakes.openai_server import FakeOpenAI

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_gemini() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> Iterator[RunningGateway]:
    config = {
        "services": [
            {
                "name": "oai",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_openai.port,
                "retries": 0,
            },
            {
                "name": "claude",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_anthropic.port,
                "retries": 0,
                "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
                "anthropic_betas": ["some-beta-*"],
            },
            {"name": "demo", "provider": "mock"},
            {
                "name": "google",
                "provider": "gemini",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_gemini.port,
                "retries": 0,
                "credentials": {"header_name": "x-goog-api-key", "header_value": GEMINI_KEY},
            },
        ],
        "rules": [
            {
                "name": "via-openai",
                "match": {"models": ["gpt-*", "fail-*"]},
                "targets": [{"service": "oai"}],
            },
            {
                "name": "via-anthropic",
                "match": {"models": ["claude-*"]},
                "targets": [{"service": "claude"}],
            },
            {
                "name": "renamed",
                "match": {"models": ["sonnet"]},
                "targets": [{"service": "claude", "model": "claude-sonnet-4-5"}],
            },
            {
                "name": "via-mock",
                "match": {"models": ["demo-model"]},
                "targets": [{"service": "demo"}],
            },
            {
                "name": "via-gemini",
                "match": {"models": ["gemini-*"]},
                "targets": [{"service": "google"}],
            },
            {
                "name": "private",
                "match": {"models": ["secret-model"]},
                "targets": [{"service": "demo"}],
            },
        ],
        "consumers": [
            {
                "name": "a",
                "keys": [KEY],
                "rules": ["via-openai", "via-anthropic", "renamed", "via-mock", "via-gemini"],
            }
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


@pytest.fixture
def client(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)


MODELS = ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash", "demo-model"]


def collect(stream: Any) -> tuple[list[str], Any]:
    with stream as s:
        kinds = [event.type for event in s]
        return kinds, s.get_final_message()


@pytest.mark.parametrize("model", MODELS)
def test_text_whole_and_streamed_agree(client: anthropic.Anthropic, model: str) -> None:
    kwargs: Any = {
        "model": model,
        "max_tokens": 200,
        "system": "Be kind.",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    whole = client.messages.create(**kwargs)
    assert whole.type == "message" and whole.role == "assistant"
    text = whole.content[0].text  # type: ignore[union-attr]
    expected = "mock: hello there" if model == "demo-model" else "Hello from the fake: hello there"
    assert text == expected
    assert whole.stop_reason == "end_turn"
    with client.messages.stream(**kwargs) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens
    if model != "demo-model":
        assert whole.usage.cache_read_input_tokens == 3


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"])
def test_tool_use_turn_then_tool_result_turn(client: anthropic.Anthropic, model: str) -> None:
    ask: Any = [{"role": "user", "content": "weather and time?"}]
    whole = client.messages.create(model=model, max_tokens=200, tools=[WEATHER, TIME], messages=ask)
    assert whole.stop_reason == "tool_use"
    uses = [b for b in whole.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert uses[0].input == {"city": "Paris", "days": 1}
    kinds, final = collect(
        client.messages.stream(model=model, max_tokens=200, tools=[WEATHER, TIME], messages=ask)
    )
    assert "input_json" in kinds
    streamed_uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in streamed_uses] == [(u.name, u.input) for u in uses]
    assert final.stop_reason == "tool_use"
    results: Any = [
        *ask,
        {"role": "assistant", "content": [u.model_dump() for u in uses]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": uses[1].id,
                    "content": [{"type": "text", "text": "noon"}],
                },
            ],
        },
    ]
    answer = client.messages.create(
        model=model, max_tokens=200, tools=[WEATHER, TIME], messages=results
    )
    assert answer.content[0].text == "Tool results: sunny; noon"  # type: ignore[union-attr]
    kinds, final = collect(
        client.messages.stream(model=model, max_tokens=200, tools=[WEATHER, TIME], messages=results)
    )
    assert final.content[0].text == "Tool results: sunny; noon"  # type: ignore[union-attr]


def test_anthropic_target_is_a_byte_for_byte_pass_through(
    client: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "some-beta-2026"},
        extra_body={"future_field": {"x": 1}},
    )
    seen = fake_anthropic.last
    assert seen["body"]["future_field"] == {"x": 1}  # an unknown field survives
    assert seen["headers"]["anthropic-beta"] == "some-beta-2026"  # the service allows it
    assert (
        seen["headers"]["x-api-key"] == "sk-ant-fake"
    )  # the gateway's credential, not the client's key
    assert KEY not in str(seen["headers"])
    client.messages.create(
        model="sonnet", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert fake_anthropic.last["body"]["model"] == "claude-sonnet-4-5"


def test_openai_target_gets_a_translated_request(
    client: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    client.messages.create(
        model="gpt-4o-mini",
        max_tokens=50,
        system=[{"type": "text", "text": "Sys."}],
        stop_sequences=["zz"],
        metadata={"user_id": "u-7"},
        messages=[{"role": "user", "content": "hi"}],
    )
    body = fake_openai.last["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "hi"},
    ]
    assert body["max_tokens"] == 50 and body["stop"] == ["zz"] and body["user"] == "u-7"
    assert "thinking" not in body and "top_k" not in body


def test_count_tokens(client: anthropic.Anthropic) -> None:
    native = client.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi you"}]
    )
    assert native.input_tokens == 1002  # the fake Anthropic's own count
    for model in ("gpt-4o-mini", "gemini-2.5-flash"):
        estimated = client.messages.count_tokens(
            model=model, messages=[{"role": "user", "content": "hi you"}]
        )
        assert 1 <= estimated.input_tokens < 50


@pytest.mark.parametrize(
    ("kwargs", "status", "error_type"),
    [
        ({"model": "nope-model"}, 404, "not_found_error"),
        ({"model": "secret-model"}, 403, "permission_error"),
        ({"model": "fail-429"}, 429, "rate_limit_error"),
        ({"model": "fail-500"}, 502, "api_error"),
        ({"model": "claude-fail-529"}, 503, "overloaded_error"),
        ({"model": "claude-fail-400"}, 400, "invalid_request_error"),
        ({"model": "claude-prompt-too-long"}, 400, "invalid_request_error"),
    ],
)
def test_errors_use_anthropic_shape(
    gateway: RunningGateway, kwargs: dict[str, Any], status: int, error_type: str
) -> None:
    body = {"max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **kwargs}
    response = httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": KEY})
    assert response.status_code == status
    data = response.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == error_type


def test_invalid_and_unauthenticated_requests(gateway: RunningGateway) -> None:
    bad = httpx.post(
        gateway.url + "/v1/messages",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"x-api-key": KEY},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    anon = httpx.post(gateway.url + "/v1/messages", json={"model": "gpt-4o-mini"})
    assert anon.status_code == 401
    assert anon.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": anon.json()["error"]["message"]},
    }
    big = httpx.post(
        gateway.url + "/v1/messages", content=b"x" * (11 * 1024 * 1024), headers={"x-api-key": KEY}
    )
    assert big.status_code == 413
    assert big.json()["error"]["type"] == "request_too_large"


def test_sdk_raises_typed_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            model="fail-429", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_error_after_stream_began_is_an_error_event(client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="claude-error-stream",
            max_tokens=10,
            messages=[{"role": "user", "content": "a b c"}],
        ) as stream,
    ):
        for _ in stream:
            pass


def test_a_relayed_error_event_is_the_last_event(gateway: RunningGateway) -> None:
    body = {
        "model": "claude-error-stream",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "a b c"}],
    }
    response = httpx.post(gateway.url + "/v1/messages", json=body, headers={"x-api-key": KEY})
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1].startswith("event: error")
    assert sum(e.startswith("event: error") for e in events) == 1


def test_a_refusal_fills_message_refusal_for_openai_clients(
    gateway: RunningGateway, client: anthropic.Anthropic
) -> None:
    oai = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": "something it declines"}]
    whole = oai.chat.completions.create(model="claude-refuse", messages=messages)
    choice = whole.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.refusal == "I can't help with that."
    stream = oai.chat.completions.create(model="claude-refuse", messages=messages, stream=True)
    refusal = ""
    finish = None
    for chunk in stream:
        for c in chunk.choices:
            refusal += c.delta.refusal or ""
            finish = c.finish_reason or finish
    assert finish == "content_filter"
    assert refusal == "I can't help with that."
    # An Anthropic client keeps Anthropic's own stop reason.
    answer = client.messages.create(model="claude-refuse", max_tokens=50, messages=messages)
    assert answer.stop_reason == "refusal"
