"""A service with ``api: responses``: chat-completions clients answered by OpenAI's Responses
API (a fake OpenAI on loopback), streamed and not, tools and JSON schema included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME: Any = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI) -> Iterator[RunningGateway]:
    service = {
        "name": "oai",
        "provider": "openai",
        "api": "responses",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "retries": 0,
    }
    config = {
        "services": [service],
        "rules": [{"name": "r", "match": {"models": ["gpt-*"]}, "targets": [{"service": "oai"}]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def chat(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


def test_a_chat_request_reaches_the_responses_api(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    answer = chat(gateway).chat.completions.create(
        model="gpt-5",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert answer.choices[0].message.content == "Hello from the fake: hi"
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"]["input"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert sent["body"]["max_output_tokens"] == 50 and sent["body"]["store"] is False


def test_streamed_text_and_tool_calls(gateway: RunningGateway) -> None:
    ask: dict[str, Any] = {
        "model": "gpt-5",
        "messages": [{"role": "user", "content": "explain, then the weather"}],
        "tools": [WEATHER, TIME],
    }
    whole = chat(gateway).chat.completions.create(**ask)
    text, calls, finish = "", {}, None
    for chunk in chat(gateway).chat.completions.create(stream=True, **ask):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    message = whole.choices[0].message
    assert text == message.content == "Let me check."
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
        (c["name"], c["arguments"]) for c in calls.values()
    ]


def test_a_tool_turn_and_json_schema(gateway: RunningGateway, fake: FakeOpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "the weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    answer = chat(gateway).chat.completions.create(
        model="gpt-5", messages=messages, tools=[WEATHER]
    )
    assert answer.choices[0].message.content == "Tool results: sunny"
    kinds = [i.get("type", "message") for i in fake.requests[-1]["body"]["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    schema = {
        "name": "echo",
        "schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
    }
    shaped = chat(gateway).chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "ping"}],
        response_format={"type": "json_schema", "json_schema": schema},
    )
    assert json.loads(shaped.choices[0].message.content or "") == {"echo": "ping"}
    assert fake.requests[-1]["body"]["text"]["format"]["name"] == "echo"


def test_a_responses_client_goes_through_untouched(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    answer = chat(gateway).responses.create(model="gpt-5", input="hello")
    assert answer.output_text == "Hello from the fake: hello"
    assert fake.requests[-1]["body"] == {"model": "gpt-5", "input": "hello"}


def test_what_the_responses_api_cannot_do_is_refused(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway).chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "x"}], stop=["END"]
        )
    assert caught.value.param == "stop"
