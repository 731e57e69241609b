"""An OpenAI-compatible server that repeats a tool call's id, type and name in every chunk
(llama.cpp's server does) reaches clients as OpenAI streams a tool call: the id, type and
name once, then the arguments in pieces; so the SDKs' accumulators do not join the name
with itself. OpenAI's own streams are relayed byte for byte."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ASK = [{"role": "user", "content": "weather and time?"}]
# A guardrail that reads answers: the stream is decoded and encoded again (the translated
# path), not passed through.
WATCHED = {"deny": [{"name": "w", "words": ["zebra"], "applies_to": "response", "action": "log"}]}


@pytest.fixture(scope="module")
def llama() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI("llama.cpp").start()
    yield server
    server.stop()


def _gateway(port: int, provider: str) -> RunningGateway:
    service = {
        "name": "local",
        "provider": provider,
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
    }
    return RunningGateway(
        {
            "services": [service],
            "rules": [
                {
                    "name": "guarded",
                    "match": {"models": ["guarded"]},
                    "targets": [{"service": "local"}],
                    "policies": {"guardrails": WATCHED},
                },
                {"name": "all", "match": {"models": ["*"]}, "targets": [{"service": "local"}]},
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()


@pytest.fixture(scope="module")
def compatible(llama: FakeOpenAI) -> Iterator[RunningGateway]:
    gateway = _gateway(llama.port, "openai-compatible")
    yield gateway
    gateway.stop()


def _chunks(text: str) -> list[dict[str, Any]]:
    return [
        orjson.loads(line[6:])
        for line in text.splitlines()
        if line.startswith("data: {") and '"choices"' in line
    ]


@pytest.mark.parametrize("model", ["llama", "guarded"])  # passed through; translated
def test_the_openai_sdk_assembles_each_call_once(compatible: RunningGateway, model: str) -> None:
    client = openai.OpenAI(base_url=compatible.url + "/v1", api_key=KEY, max_retries=0)
    with client.chat.completions.stream(model=model, messages=ASK, tools=[WEATHER, TIME]) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("call_1", "function", "get_weather"),
        ("call_2", "function", "get_time"),
    ]
    assert orjson.loads(calls[0].function.arguments) == {"city": "Paris", "days": 1}
    assert orjson.loads(calls[1].function.arguments) == {"city": "Tokyo", "days": 2}


def test_the_relayed_chunks_name_each_call_in_its_first_chunk_only(
    compatible: RunningGateway, llama: FakeOpenAI
) -> None:
    answer = httpx.post(
        compatible.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "llama", "messages": ASK, "tools": [WEATHER, TIME], "stream": True},
    )
    assert llama.sent[-1].count(b'"name":"get_weather"') > 1  # the server repeats it
    deltas = [
        call
        for chunk in _chunks(answer.text)
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    for index in (0, 1):
        mine = [d for d in deltas if d["index"] == index]
        assert len(mine) > 2
        assert "id" in mine[0] and mine[0]["type"] == "function" and mine[0]["function"]["name"]
        assert all("id" not in d and "type" not in d for d in mine[1:])
        assert all("name" not in d.get("function", {}) for d in mine[1:])
        joined = "".join(d["function"].get("arguments", "") for d in mine)
        assert orjson.loads(joined)["days"] == index + 1


def test_an_anthropic_client_gets_whole_tool_uses(compatible: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=compatible.url, api_key=KEY, max_retries=0)
    tools: Any = [
        {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]},  # type: ignore[index]
        {"name": "get_time", "input_schema": TIME["function"]["parameters"]},  # type: ignore[index]
    ]
    with client.messages.stream(model="llama", max_tokens=100, messages=ASK, tools=tools) as stream:
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [
        ("call_1", "get_weather", {"city": "Paris", "days": 1}),
        ("call_2", "get_time", {"city": "Tokyo", "days": 2}),
    ]
    assert final.stop_reason == "tool_use"


def test_openais_own_stream_passes_byte_for_byte(llama: FakeOpenAI) -> None:
    # provider: openai is OpenAI's own API: its streams are never edited, whatever they hold.
    gateway = _gateway(llama.port, "openai")
    try:
        body = {
            "model": "gpt-4o",
            "messages": ASK,
            "tools": [WEATHER, TIME],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json=body,
        )
        assert answer.status_code == 200
        assert answer.content == llama.sent[-1]
    finally:
        gateway.stop()
