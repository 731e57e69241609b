"""Azure OpenAI behind a running gateway: both URL styles, every endpoint, content filtering,
and Entra ID tokens fetched from a (fake) token endpoint on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import KEY
from tests.fakes import azure_server
from tests.fakes.azure_server import FakeAzure
from tests.fakes.gateway import RunningGateway


def _service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "azure",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
        **extra,
    }


def _entra(port: int, secret: str) -> dict[str, Any]:
    return {
        "azure_tenant_id": azure_server.TENANT,
        "azure_client_id": azure_server.CLIENT_ID,
        "azure_client_secret": secret,
        "azure_authority_host": f"http://127.0.0.1:{port}",
    }


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[FakeAzure, RunningGateway]]:
    fake = FakeAzure().start()
    key = {"header_name": "api-key", "header_value": azure_server.API_KEY}
    gateway = RunningGateway(
        {
            "services": [
                _service("dated", fake.port, credentials=key),
                _service("v1", fake.port, api_version="v1", credentials=key),
                _service("entra", fake.port, credentials=_entra(fake.port, "entra-secret")),
                _service("bad-secret", fake.port, credentials=_entra(fake.port, "not-the-secret")),
                _service("old", fake.port, api_version="2023-03-15-preview", credentials=key),
            ],
            "rules": [
                {
                    "name": "embed",
                    "match": {"models": ["embed"]},
                    "targets": [{"service": "dated", "model": "text-embedding-3-small"}],
                },
                {
                    "name": "v1",
                    "match": {"models": ["v1-*"]},
                    "targets": [{"service": "v1", "model": "gpt-4o-mini"}],
                },
                {
                    "name": "entra",
                    "match": {"models": ["entra"]},
                    "targets": [{"service": "entra"}],
                },
                {
                    "name": "bad-secret",
                    "match": {"models": ["bad-secret"]},
                    "targets": [{"service": "bad-secret"}],
                },
                {"name": "old", "match": {"models": ["old"]}, "targets": [{"service": "old"}]},
                {"name": "all", "match": {"models": ["*"]}, "targets": [{"service": "dated"}]},
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()
    yield fake, gateway
    gateway.stop()
    fake.stop()


@pytest.fixture
def fake(setup: tuple[FakeAzure, RunningGateway]) -> FakeAzure:
    return setup[0]


@pytest.fixture
def client(setup: tuple[FakeAzure, RunningGateway]) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup[1].url + "/v1", api_key=KEY, max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_deployment_url_api_version_and_key(client: openai.OpenAI, fake: FakeAzure) -> None:
    whole = client.chat.completions.create(model="gpt-4o", messages=user("hi"))  # type: ignore[arg-type]
    assert whole.choices[0].message.content == "Hello from the fake: hi"
    assert fake.last["path"] == "/openai/deployments/gpt-4o/chat/completions"
    assert fake.last["query"] == {"api-version": "2024-10-21"}
    assert fake.last["headers"]["api-key"] == azure_server.API_KEY


def test_an_api_version_azure_does_not_know_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="old", messages=user("hi"))  # type: ignore[arg-type]
    assert "API version not supported" in info.value.message


def test_embeddings_through_the_gateway(client: openai.OpenAI, fake: FakeAzure) -> None:
    texts = ["first", "second text"]
    result = client.embeddings.create(model="embed", input=texts)  # base64 on the wire
    assert [e.embedding for e in result.data] == [azure_server.vector(t) for t in texts]
    assert fake.last["path"] == "/openai/deployments/text-embedding-3-small/embeddings"
    assert fake.last["body"]["encoding_format"] == "base64"
    floats = client.embeddings.create(model="embed", input="x", encoding_format="float")
    assert floats.data[0].embedding == azure_server.vector("x")


def test_legacy_completions(client: openai.OpenAI, fake: FakeAzure) -> None:
    result = client.completions.create(model="gpt-35-turbo-instruct", prompt="say hi", max_tokens=3)
    assert result.choices[0].text == "Hello from the"
    assert result.choices[0].finish_reason == "length"
    assert fake.last["path"] == "/openai/deployments/gpt-35-turbo-instruct/completions"


def test_v1_style_names_the_deployment_in_the_body(client: openai.OpenAI, fake: FakeAzure) -> None:
    stream = client.chat.completions.create(model="v1-chat", messages=user("hi"), stream=True)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from the fake: hi"
    assert fake.last["path"] == "/openai/v1/chat/completions"
    assert fake.last["query"] == {}
    assert fake.last["body"]["model"] == "gpt-4o-mini"
    result = client.embeddings.create(model="v1-embed", input="x", encoding_format="float")
    assert result.data[0].embedding == azure_server.vector("x")
    assert fake.last["path"] == "/openai/v1/embeddings"


def test_a_filtered_prompt_is_a_400_with_code_content_filter(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="content-filter", messages=user("x"))  # type: ignore[arg-type]
    assert info.value.code == "content_filter"
    assert info.value.param == "prompt"


def test_a_filtered_answer_finishes_with_content_filter(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="filtered-output", messages=user("x"))  # type: ignore[arg-type]
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.choices[0].message.content == "I cannot"
    stream = client.chat.completions.create(
        model="filtered-output",
        messages=user("x"),  # type: ignore[arg-type]
        stream=True,
    )
    finishes = [c.choices[0].finish_reason for c in stream if c.choices]
    assert finishes[-1] == "content_filter"


def test_entra_token_is_fetched_once_and_sent_as_bearer(
    client: openai.OpenAI, fake: FakeAzure
) -> None:
    before = len(fake.token_requests)
    for _ in range(3):
        whole = client.chat.completions.create(model="entra", messages=user("hi"))  # type: ignore[arg-type]
        assert whole.choices[0].message.content == "Hello from the fake: hi"
    assert len(fake.token_requests) - before <= 1
    assert fake.token_requests[-1]["client_secret"] == "entra-secret"
    assert fake.last["headers"]["authorization"].startswith("Bearer entra-token-")
    assert "api-key" not in fake.last["headers"]


def test_a_refused_client_secret_is_a_502_naming_the_service(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="bad-secret", messages=user("hi"))  # type: ignore[arg-type]
    assert info.value.status_code == 502
    assert "bad-secret" in info.value.message
    assert "invalid_client" in info.value.message
    assert "not-the-secret" not in info.value.response.text


def test_an_anthropic_client_gets_azure_answers(setup: tuple[FakeAzure, RunningGateway]) -> None:
    client = anthropic.Anthropic(base_url=setup[1].url, api_key=KEY, max_retries=0)
    with client.messages.stream(
        model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake: hi"
    assert final.stop_reason == "end_turn"
