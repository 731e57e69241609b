"""The promise of the providers work: one config, three providers, one unmodified openai client.

``fast`` goes to Anthropic, ``cheap`` to a vLLM server, ``embed`` to Bedrock;
the client gets correct, streamed, tool-calling answers from all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.bedrock_server import ACCESS_KEY, SECRET_KEY, FakeBedrock, vector
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    anthropic, vllm, bedrock = FakeAnthropic().start(), FakeOpenAI().start(), FakeBedrock().start()
    local = {"protocol": "http", "host": "127.0.0.1"}
    gateway = RunningGateway(
        {
            "services": [
                {
                    "name": "claude",
                    "provider": "anthropic",
                    "port": anthropic.port,
                    **local,
                    "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
                },
                {"name": "vllm", "provider": "vllm", "port": vllm.port, **local},
                {
                    "name": "bedrock",
                    "provider": "bedrock",
                    "port": bedrock.port,
                    **local,
                    "credentials": {
                        "aws_access_key_id": ACCESS_KEY,
                        "aws_secret_access_key": SECRET_KEY,
                        "aws_region": "us-east-1",
                    },
                },
            ],
            "rules": [
                {
                    "name": "fast",
                    "match": {"models": ["fast"]},
                    "targets": [{"service": "claude", "model": "claude-haiku-4-5"}],
                },
                {
                    "name": "cheap",
                    "match": {"models": ["cheap"]},
                    "targets": [{"service": "vllm", "model": "llama-3.1-8b"}],
                },
                {
                    "name": "embed",
                    "match": {"models": ["embed"]},
                    "targets": [{"service": "bedrock", "model": "amazon.titan-embed-text-v2:0"}],
                },
            ],
            "consumers": [{"name": "app", "keys": [KEY]}],
        }
    ).start()
    yield openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    gateway.stop()
    for fake in (anthropic, vllm, bedrock):
        fake.stop()


@pytest.mark.parametrize("model", ["fast", "cheap"])
def test_streamed_tool_calls_then_a_streamed_answer(client: openai.OpenAI, model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "what is the weather in Paris?"}]
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(
        model=model, messages=messages, tools=[WEATHER], stream=True
    ):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["name"] == "get_weather" and orjson.loads(call["arguments"]) == {
        "city": "Paris",
        "days": 1,
    }
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
    ]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=model, messages=messages, tools=[WEATHER], stream=True
        )
        if c.choices
    )
    assert text == "Tool results: sunny, 21C"


def test_embeddings_from_bedrock(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed", input="hello world")
    assert result.data[0].embedding == pytest.approx(
        vector("hello world", len(result.data[0].embedding))
    )
    assert result.model
