"""Cohere behind a running gateway: embeddings, the wire requests, and errors inside a stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import KEY
from tests.fakes import cohere_server
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gateway import RunningGateway


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[FakeCohere, RunningGateway]]:
    fake = FakeCohere().start()
    service = {
        "name": "cohere",
        "provider": "cohere",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "retries": 0,
        "credentials": {"header_name": "Authorization", "header_value": "Bearer co-fake"},
    }
    gateway = RunningGateway(
        {
            "services": [service],
            "rules": [
                {
                    "name": "embed",
                    "match": {"models": ["embed"]},
                    "targets": [{"service": "cohere", "model": "embed-v4.0"}],
                },
                {"name": "chat", "match": {"models": ["*"]}, "targets": [{"service": "cohere"}]},
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()
    yield fake, gateway
    gateway.stop()
    fake.stop()


@pytest.fixture
def fake(setup: tuple[FakeCohere, RunningGateway]) -> FakeCohere:
    return setup[0]


@pytest.fixture
def client(setup: tuple[FakeCohere, RunningGateway]) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup[1].url + "/v1", api_key=KEY, max_retries=0)


def test_embeddings_through_the_gateway(client: openai.OpenAI, fake: FakeCohere) -> None:
    texts = ["first text", "a second, longer text"]
    # The SDK asks for base64 unless told otherwise and decodes it itself.
    result = client.embeddings.create(model="embed", input=texts)
    assert [e.embedding for e in result.data] == [cohere_server.vector(t) for t in texts]
    assert [e.index for e in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 6
    sent: dict[str, Any] = fake.last["body"]
    assert fake.last["path"] == "/v2/embed"
    assert fake.last["headers"]["authorization"] == "Bearer co-fake"
    assert sent["model"] == "embed-v4.0"
    assert sent["texts"] == texts
    assert sent["input_type"] == "search_document"


def test_float_embeddings_and_dimensions(client: openai.OpenAI, fake: FakeCohere) -> None:
    result = client.embeddings.create(
        model="embed", input="one", encoding_format="float", dimensions=256
    )
    assert result.data[0].embedding == cohere_server.vector("one")
    assert fake.last["body"]["embedding_types"] == ["float"]
    assert fake.last["body"]["output_dimension"] == 256


def test_token_arrays_cannot_be_embedded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="embed", input=[[1, 2, 3]])
    assert info.value.body["param"] == "input"  # type: ignore[index]


def test_the_chat_request_on_the_wire(client: openai.OpenAI, fake: FakeCohere) -> None:
    client.chat.completions.create(
        model="command-a-03-2025",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        top_p=0.5,
        max_tokens=20,
    )
    assert fake.last["path"] == "/v2/chat"
    assert fake.last["body"] == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": False,
        "max_tokens": 20,
        "temperature": 0.2,
        "p": 0.5,
    }


def test_an_error_inside_a_stream_reaches_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="error-stream", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    text: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            text += [c.delta.content or "" for c in chunk.choices]
    assert "Overloaded" in info.value.message
    assert "".join(text) == "Hello"  # what came before the error was delivered


def test_an_anthropic_client_gets_cohere_tool_calls(
    setup: tuple[FakeCohere, RunningGateway],
) -> None:
    client = anthropic.Anthropic(base_url=setup[1].url, api_key=KEY, max_retries=0)
    tool: Any = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
    with client.messages.stream(
        model="command-a-03-2025",
        max_tokens=100,
        tools=[tool],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    blocks = [b for b in final.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in blocks] == [("get_weather", {"city": "Paris", "days": 1})]
    assert final.stop_reason == "tool_use"
