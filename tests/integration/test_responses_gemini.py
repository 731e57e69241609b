"""Gemini's thought signatures through the Responses API: they ride on the function call's
call_id, so a follow-up (by previous_response_id, or the items sent back) hands them back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.gemini_server import GEMINI_KEY, SIGNATURE, FakeGemini

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[FakeGemini, RunningGateway]]:
    fake = FakeGemini().start()
    service = {
        "name": "google",
        "provider": "gemini",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "retries": 0,
        "credentials": {"header_name": "x-goog-api-key", "header_value": GEMINI_KEY},
    }
    rule = {"name": "g", "match": {"models": ["gemini-*"]}, "targets": [{"service": "google"}]}
    gateway = RunningGateway({"services": [service], "rules": [rule]}).start()
    yield fake, gateway
    gateway.stop()
    fake.stop()


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
