"""Gemini and Vertex behind a running gateway: embeddings, the wire, tokens, and odd answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from sluicegate.config.model import Credentials, Service
from sluicegate.credentials import build_signer
from sluicegate.credentials.gcp import GoogleServiceAccount
from sluicegate.errors import CredentialsRefused
from sluicegate.proxy.upstream import HttpTransport
from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.gemini_server import (
    GEMINI_KEY,
    INVALID_KEY,
    PROJECT,
    TEXT_SIGNATURE,
    FakeGemini,
    FakeVertex,
    fake_vector,
    other_service_account,
    service_account_json,
)

StartGateway = Callable[[dict[str, Any]], RunningGateway]
USER = [{"role": "user", "content": "hi"}]


def _service(name: str, provider: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
        **extra,
    }


def _config(*services: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": list(services),
        "rules": [
            {
                "name": s["name"],
                "match": {"headers": {"x-target": s["name"]}},
                "targets": [{"service": s["name"]}],
            }
            for s in services
        ],
        "consumers": [{"name": "tester", "keys": [KEY]}],
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGemini, FakeVertex]]:
    gemini, vertex = FakeGemini().start(), FakeVertex().start()
    yield gemini, vertex
    gemini.stop()
    vertex.stop()


def _vertex(vertex: FakeVertex, name: str = "vertex", **extra: Any) -> dict[str, Any]:
    key = service_account_json(vertex.token_uri)
    return _service(
        name,
        "vertex",
        vertex.port,
        project=PROJECT,
        location="europe-west4",
        credentials={"gcp_service_account_json": key},
        **extra,
    )


@pytest.fixture(scope="module")
def gateway(fakes: tuple[FakeGemini, FakeVertex]) -> Iterator[RunningGateway]:
    gemini, vertex = fakes
    header = {"header_name": "x-goog-api-key", "header_value": GEMINI_KEY}
    running = RunningGateway(
        _config(
            _service("gemini", "gemini", gemini.port, credentials=header),
            _service(
                "gemini-param",
                "gemini",
                gemini.port,
                credentials={"param_name": "key", "param_value": GEMINI_KEY},
            ),
            _service(
                "gemini-invalid",
                "gemini",
                gemini.port,
                credentials={"header_name": "x-goog-api-key", "header_value": INVALID_KEY},
            ),
            _vertex(vertex),
        )
    ).start()
    yield running
    running.stop()


def _client(gateway: RunningGateway, service: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key=KEY,
        max_retries=0,
        default_headers={"x-target": service},
    )


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return _client(gateway, "gemini")


@pytest.fixture
def vertex_client(gateway: RunningGateway) -> openai.OpenAI:
    return _client(gateway, "vertex")


# ---------------------------------------------------------------- embeddings
def test_gemini_embeddings(client: openai.OpenAI, fakes: tuple[FakeGemini, FakeVertex]) -> None:
    gemini = fakes[0]
    texts = ["first text", "a second, longer text"]
    # The SDK asks for base64 unless told otherwise, and reads floats too.
    result = client.embeddings.create(model="text-embedding-004", input=texts)
    assert [e.embedding for e in result.data] == [fake_vector(t) for t in texts]
    assert [e.index for e in result.data] == [0, 1]
    assert gemini.last["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert gemini.last["headers"]["x-goog-api-key"] == GEMINI_KEY
    assert gemini.last["body"]["requests"][1] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": texts[1]}]},
    }


def test_vertex_embeddings_with_dimensions(
    vertex_client: openai.OpenAI, fakes: tuple[FakeGemini, FakeVertex]
) -> None:
    vertex = fakes[1]
    result = vertex_client.embeddings.create(
        model="text-embedding-005",
        input="one two three",
        encoding_format="float",
        dimensions=2,
    )
    assert result.data[0].embedding == fake_vector("one two three")[:2]
    assert result.usage.prompt_tokens == 3
    assert vertex.last["path"] == (
        f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/"
        "text-embedding-005:predict"
    )
    assert vertex.last["body"] == {
        "instances": [{"content": "one two three"}],
        "parameters": {"outputDimensionality": 2},
    }


def test_token_arrays_cannot_be_embedded(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="e", input=[[1, 2, 3]])
    assert info.value.body["param"] == "input"  # type: ignore[index]


# ---------------------------------------------------------------- the wire
def test_the_chat_request_on_the_wire(
    client: openai.OpenAI, fakes: tuple[FakeGemini, FakeVertex]
) -> None:
    gemini = fakes[0]
    client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, *USER],
        temperature=0.2,
        max_tokens=20,
    )
    assert gemini.last["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "key" not in gemini.last["query"]
    assert gemini.last["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 20, "temperature": 0.2},
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_client_hands_the_text_signature_back(
    vertex_client: openai.OpenAI, fakes: tuple[FakeGemini, FakeVertex], stream: bool
) -> None:
    """The signature Gemini put on its text comes in the message's reasoning_blocks (a
    stream's delta); the message sent back as it came gives Gemini the signature again."""
    vertex = fakes[1]
    if stream:
        chunks = vertex_client.chat.completions.create(
            model="gemini-3-pro", messages=USER, stream=True
        )
        deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
        text = "".join(d.get("content") or "" for d in deltas)
        blocks = [b for d in deltas for b in d.get("reasoning_blocks") or []]
    else:
        answer = vertex_client.chat.completions.create(model="gemini-3-pro", messages=USER)
        reply = answer.choices[0].message.model_dump()
        text, blocks = reply["content"], reply["reasoning_blocks"]
    assert blocks == [{"type": "gemini_signature", "thoughtSignature": TEXT_SIGNATURE}]
    back: Any = {"role": "assistant", "content": text, "reasoning_blocks": blocks}
    vertex_client.chat.completions.create(
        model="gemini-3-pro", messages=[*USER, back, {"role": "user", "content": "more"}]
    )
    model_turn = vertex.last["body"]["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [{"text": "Hello from the fake: hi", "thoughtSignature": TEXT_SIGNATURE}],
    }


def test_the_api_key_as_a_query_parameter(
    gateway: RunningGateway, fakes: tuple[FakeGemini, FakeVertex]
) -> None:
    gemini = fakes[0]
    client = _client(gateway, "gemini-param")
    stream = client.chat.completions.create(model="flash", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert gemini.last["query"] == {"alt": "sse", "key": GEMINI_KEY}
    assert "x-goog-api-key" not in gemini.last["headers"]


def test_an_invalid_api_key_is_a_502(gateway: RunningGateway) -> None:
    client = _client(gateway, "gemini-invalid")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="flash", messages=USER)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"
    assert INVALID_KEY not in info.value.response.text


def test_vertex_reuses_its_token(
    vertex_client: openai.OpenAI, fakes: tuple[FakeGemini, FakeVertex]
) -> None:
    vertex = fakes[1]
    before = vertex.token_requests
    for _ in range(3):
        vertex_client.chat.completions.create(model="gemini-2.5-flash", messages=USER)
    assert vertex.token_requests - before <= 1  # earlier tests may have fetched it
    assert vertex.last["headers"]["authorization"].startswith("Bearer ya29.fake-")
    assert vertex.last["path"] == (
        f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )


# ---------------------------------------------------------------- odd answers
def test_a_blocked_prompt_is_a_400(client: openai.OpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            answer = client.chat.completions.create(
                model="blocked-prompt", messages=USER, stream=stream
            )
            if stream:
                list(answer)  # type: ignore[call-overload]
        assert info.value.code == "content_filter"


def test_a_safety_stop_is_content_filter(vertex_client: openai.OpenAI) -> None:
    whole = vertex_client.chat.completions.create(model="safety-stop", messages=USER)
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.choices[0].message.content is None
    stream = vertex_client.chat.completions.create(model="safety-stop", messages=USER, stream=True)
    finishes = [c.choices[0].finish_reason for c in stream if c.choices]
    assert finishes[-1] == "content_filter"


def test_an_error_inside_a_stream_reaches_the_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="error-stream", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    text = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            text += [c.delta.content or "" for c in chunk.choices]
    assert "overloaded" in info.value.message
    # "Hello" came first, but it is lost when it shares one read with the error:
    # SSEDecoder.feed drops the chunks decoded before an event that raises.
    assert "".join(text) in ("", "Hello")


# ---------------------------------------------------------------- the token signer
def _prepare(signer: GoogleServiceAccount, times: int = 1) -> None:
    async def run() -> None:
        http = HttpTransport()
        try:
            for _ in range(times):
                await signer.prepare(http)
        finally:
            await http.close()

    asyncio.run(run())


def test_tokens_are_refreshed_within_five_minutes_of_expiry(
    fakes: tuple[FakeGemini, FakeVertex],
) -> None:
    vertex = fakes[1]
    vertex.expires_in = 240
    try:
        signer = GoogleServiceAccount.from_json(service_account_json(vertex.token_uri))
        before = vertex.token_requests
        _prepare(signer, times=3)
        assert vertex.token_requests - before == 3
    finally:
        vertex.expires_in = 3600
    signer = GoogleServiceAccount.from_json(service_account_json(vertex.token_uri))
    before = vertex.token_requests
    _prepare(signer, times=3)
    assert vertex.token_requests - before == 1


def test_concurrent_requests_share_one_token_fetch(fakes: tuple[FakeGemini, FakeVertex]) -> None:
    vertex = fakes[1]
    signer = GoogleServiceAccount.from_json(service_account_json(vertex.token_uri))
    before = vertex.token_requests

    async def run() -> None:
        http = HttpTransport()
        try:
            await asyncio.gather(*(signer.prepare(http) for _ in range(5)))
        finally:
            await http.close()

    asyncio.run(run())
    assert vertex.token_requests - before == 1


def test_a_refused_grant_is_a_transport_failure(fakes: tuple[FakeGemini, FakeVertex]) -> None:
    vertex = fakes[1]
    key = service_account_json(vertex.token_uri.replace("/token", "/no-such-endpoint"))
    with pytest.raises(CredentialsRefused) as info:
        _prepare(GoogleServiceAccount.from_json(key))
    assert "PRIVATE KEY" not in str(info.value)


def test_the_project_decides_access(
    start_gateway: StartGateway, fakes: tuple[FakeGemini, FakeVertex]
) -> None:
    vertex = fakes[1]
    intruder = _vertex(vertex, "intruder")
    intruder["credentials"] = {
        "gcp_service_account_json": other_service_account(service_account_json(vertex.token_uri))
    }
    running = start_gateway(_config(intruder))
    with pytest.raises(openai.APIStatusError) as info:
        _client(running, "intruder").chat.completions.create(model="gemini", messages=USER)
    assert (info.value.status_code, info.value.code) == (502, "upstream_auth_failed")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "is not JSON"),
        ('{"type": "authorized_user"}', "is not a service account key"),
        ('{"type": "service_account", "client_email": "a@b"}', "lacks private_key, token_uri"),
        (
            '{"client_email": "a@b", "private_key": "-----BEGIN nonsense", "token_uri": "http://x"}',
            "private_key that cannot be read",
        ),
    ],
)
def test_unusable_keys_are_config_warnings(text: str, problem: str) -> None:
    warnings: list[str] = []
    service = Service(name="v", provider="vertex", project="p")
    signer = build_signer(
        Credentials(gcp_service_account_json=text), service, "services[0]", warnings
    )
    assert signer is None
    (warning,) = warnings
    assert problem in warning
    assert "nonsense" not in warning


def test_the_signer_never_shows_its_key(fakes: tuple[FakeGemini, FakeVertex]) -> None:
    signer = GoogleServiceAccount.from_json(service_account_json(fakes[1].token_uri))
    assert "PRIVATE" not in repr(signer)
    assert "gateway@" in repr(signer)
