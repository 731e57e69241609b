"""Bedrock's CountTokens answers ``/v1/responses/input_tokens`` for a rule whose first target
is a Bedrock service: the request is translated to a Converse request and counted there,
signed like any other call (the fake checks the SigV4 signature)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.bedrock_server import ACCESS_KEY, REGION, SECRET_KEY, FakeBedrock
from tests.fakes.gateway import RunningGateway

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[FakeBedrock, RunningGateway]]:
    fake = FakeBedrock().start()
    service = {
        "name": "aws",
        "provider": "bedrock",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "retries": 0,
        "credentials": {
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": REGION,
        },
    }
    rule = {
        "name": "claude",
        "match": {"models": ["claude-on-aws"]},
        "targets": [{"service": "aws", "model": "anthropic.claude-3-haiku-20240307-v1:0"}],
    }
    gateway = RunningGateway({"services": [service], "rules": [rule]}).start()
    yield fake, gateway
    gateway.stop()
    fake.stop()


def test_input_tokens_are_counted_by_bedrock(setup: tuple[FakeBedrock, RunningGateway]) -> None:
    fake, gateway = setup
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    signed = fake.signatures_checked
    counted = sdk.responses.input_tokens.count(
        model="claude-on-aws",
        instructions="Be brief.",
        input="what is the weather in Paris",
        tools=[WEATHER],
    )
    assert fake.last["path"].endswith("/count-tokens")
    assert fake.signatures_checked == signed + 1
    converse = fake.last["body"]["input"]["converse"]
    assert converse["system"] == [{"text": "Be brief."}]
    # 6 words of input, 2 of the instructions, the tool's name and its 2-word description
    assert counted.input_tokens == 6 + 2 + 1 + 2
