"""The fakes are faithful: the official SDKs read them without complaint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_server import FakeAnthropic

WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-fake", max_retries=0)


def test_anthropic_sdk_reads_a_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-fake",
        max_tokens=100,
        system="Be kind.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake: hi"
    assert message.stop_reason == "end_turn"
    assert message.usage.cache_read_input_tokens == 3


def test_anthropic_sdk_reads_a_stream_with_tools(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-fake",
        max_tokens=100,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert "input_json" in events
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.input == {"city": "Paris", "days": 1}
    assert final.stop_reason == "tool_use"


def test_anthropic_sdk_reads_a_text_stream_and_thinking(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-fake",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "tell me"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake: tell me"
    assert final.content[0].type == "thinking"


def test_anthropic_sdk_reads_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            model="fail-429", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(
            model="fail-529", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529


def test_anthropic_sdk_sees_an_error_event(client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="error-stream", max_tokens=10, messages=[{"role": "user", "content": "a b c"}]
        ) as stream,
    ):
        for _ in stream:
            pass
