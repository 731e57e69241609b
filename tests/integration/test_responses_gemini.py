"""Gemini's thought signatures through the Responses API. A function call's rides on its
call_id; the one on a turn's text or thought summary comes back as a ``reasoning`` item
whose ``encrypted_content`` a follow-up (by previous_response_id, or the items sent back
as Codex sends them) hands back to Gemini on the part it came with, and to no other
provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.gemini_server import (
    GEMINI_KEY,
    SIGNATURE,
    TEXT_SIGNATURE,
    THOUGHT_SIGNATURE,
    FakeGemini,
)

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def setup(claude: FakeAnthropic) -> Iterator[tuple[FakeGemini, RunningGateway]]:
    fake = FakeGemini().start()
    http = {"protocol": "http", "host": "127.0.0.1", "retries": 0}
    services = [
        {
            **http,
            "name": "google",
            "provider": "gemini",
            "port": fake.port,
            "credentials": {"header_name": "x-goog-api-key", "header_value": GEMINI_KEY},
        },
        {
            **http,
            "name": "claude",
            "provider": "anthropic",
            "port": claude.port,
            "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
        },
    ]
    rules = [
        {"name": "g", "match": {"models": ["gemini-*"]}, "targets": [{"service": "google"}]},
        {"name": "c", "match": {"models": ["claude-*"]}, "targets": [{"service": "claude"}]},
    ]
    gateway = RunningGateway({"services": services, "rules": rules}).start()
    yield fake, gateway
    gateway.stop()
    fake.stop()


def sdk_for(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


def answer(sdk: openai.OpenAI, stream: bool, **ask: Any) -> Any:
    if not stream:
        return sdk.responses.create(**ask)
    with sdk.responses.stream(**ask) as events:
        return events.get_final_response()


def follow_ups(
    fake: FakeGemini, sdk: openai.OpenAI, first: Any, then: list[Any], **ask: Any
) -> list[list[dict[str, Any]]]:
    """The model turn Gemini was handed back, by previous_response_id and with every item
    sent back whole (store off, as Codex does)."""
    sdk.responses.create(previous_response_id=first.id, input=then, **ask)
    by_id = fake.requests[-1]["body"]["contents"]
    again = [item.model_dump(exclude_none=True) for item in first.output]
    sdk.responses.create(
        input=[{"role": "user", "content": "hello"}, *again, *then],
        store=False,
        include=["reasoning.encrypted_content"],
        **ask,
    )
    handed = fake.requests[-1]["body"]["contents"]
    turns = []
    for contents in (by_id, handed):
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        turns.append(contents[1]["parts"])
    return turns


def signatures(body: dict[str, Any]) -> list[str]:
    return [
        part["thoughtSignature"]
        for content in body["contents"]
        for part in content["parts"]
        if "functionCall" in part and "thoughtSignature" in part
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_thought_signature_goes_back_to_gemini(
    setup: tuple[FakeGemini, RunningGateway], stream: bool
) -> None:
    fake, gateway = setup
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    ask: dict[str, Any] = {"model": "gemini-3-pro", "input": "the weather?", "tools": [WEATHER]}
    if stream:
        with sdk.responses.stream(**ask) as events:
            first = events.get_final_response()
    else:
        first = sdk.responses.create(**ask)
    [call] = [i for i in first.output if i.type == "function_call"]
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    answer = sdk.responses.create(
        model="gemini-3-pro", previous_response_id=first.id, input=[output], tools=[WEATHER]
    )
    assert answer.output_text == "Tool results: sunny"
    assert signatures(fake.requests[-1]["body"]) == [SIGNATURE]


@pytest.mark.parametrize("stream", [False, True])
def test_a_text_turns_signature_goes_back_on_its_text(
    setup: tuple[FakeGemini, RunningGateway], stream: bool
) -> None:
    fake, gateway = setup
    sdk = sdk_for(gateway)
    first = answer(sdk, stream, model="gemini-3-pro", input="hello")
    assert first.output_text == "Hello from the fake: hello"
    [reasoning] = [item for item in first.output if item.type == "reasoning"]
    assert reasoning.summary == []
    assert reasoning.encrypted_content
    assert TEXT_SIGNATURE not in reasoning.encrypted_content  # sealed, not the bare one
    turns = follow_ups(
        fake, sdk, first, [{"role": "user", "content": "and then?"}], model="gemini-3-pro"
    )
    for parts in turns:
        assert parts == [{"text": "Hello from the fake: hello", "thoughtSignature": TEXT_SIGNATURE}]


@pytest.mark.parametrize("stream", [False, True])
def test_a_thought_summary_comes_back_and_goes_back_signed(
    setup: tuple[FakeGemini, RunningGateway], stream: bool
) -> None:
    fake, gateway = setup
    sdk = sdk_for(gateway)
    ask: dict[str, Any] = {"model": "gemini-3-pro", "tools": [WEATHER]}
    first = answer(sdk, stream, input="hello, the weather?", reasoning={"effort": "low"}, **ask)
    reasoning, call = first.output
    assert reasoning.type == "reasoning"
    assert [s.text for s in reasoning.summary] == ["Let me think about it."]
    assert reasoning.encrypted_content
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    for parts in follow_ups(fake, sdk, first, [output], **ask):
        thought, called = parts
        assert thought == {
            "text": "Let me think about it.",
            "thought": True,
            "thoughtSignature": THOUGHT_SIGNATURE,
        }
        assert called["functionCall"]["name"] == "get_weather"
        assert called["thoughtSignature"] == SIGNATURE


def test_gemini_signatures_never_reach_another_provider(
    setup: tuple[FakeGemini, RunningGateway], claude: FakeAnthropic
) -> None:
    _, gateway = setup
    sdk = sdk_for(gateway)
    first = sdk.responses.create(model="gemini-3-pro", input="hello")
    assert first.output[0].type == "reasoning"
    sdk.responses.create(model="claude-haiku", input="more", previous_response_id=first.id)
    messages = claude.requests[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] in (
        "Hello from the fake: hello",
        [{"type": "text", "text": "Hello from the fake: hello"}],
    )


@pytest.mark.parametrize("instructions", [None, "Answer in French, briefly."])
def test_input_tokens_are_counted_by_gemini(
    setup: tuple[FakeGemini, RunningGateway], instructions: str | None
) -> None:
    """Gemini's countTokens answers /v1/responses/input_tokens (the instructions and tools
    counted with the input), not the gateway's estimate."""
    fake, gateway = setup
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    before = len(fake.requests)
    extra: dict[str, Any] = {} if instructions is None else {"instructions": instructions}
    counted = sdk.responses.input_tokens.count(
        model="gemini-3-pro", input="what is the weather in Paris today", tools=[WEATHER], **extra
    )
    asked = fake.requests[before:]
    assert [r["path"] for r in asked] == ["/v1beta/models/gemini-3-pro:countTokens"]
    request = asked[0]["body"]["generateContentRequest"]
    assert request["model"] == "models/gemini-3-pro"
    words = 7 + 1 + (4 if instructions else 0)  # the input, the tool's name, the instructions
    assert counted.input_tokens == words
