"""/v1/responses to OpenAI's own Responses API (a fake OpenAI on loopback): the client's
bytes pass through, the answer's only edits are the gateway's id and the client's
previous_response_id; follow-ups may change provider."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_responses import SCHEMA, TIME, WEATHER, responses_config, shape

LIFECYCLE = ("response.created", "response.in_progress", "response.completed")


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = f"sqlite:///{tmp_path_factory.mktemp('native') / 'sluicegate.db'}"
    config = responses_config(fake_anthropic.port, fake_openai.port, store)
    config["services"].append(
        {
            "name": "oai",
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": fake_openai.port,
            "retries": 0,
            "healthchecks": {},
            "credentials": {"header_name": "Authorization", "header_value": "Bearer sk-up"},
        }
    )
    config["rules"].append(
        {
            "name": "oai",
            "match": {"models": ["gpt-*", "reasoner*", "drop-stream"]},
            "targets": [{"service": "oai"}],
        }
    )
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def post(gateway: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/responses",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
        timeout=10,
    )


def events(data: bytes) -> list[tuple[str, bytes]]:
    out = []
    for raw in data.split(b"\n\n"):
        if raw.strip():
            name = raw.split(b"\n")[0].removeprefix(b"event: ").decode()
            out.append((name, raw))
    return out


def test_the_clients_bytes_reach_openai_untouched(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    body = {"model": "gpt-4.1", "input": "hello", "metadata": {"k": "v"}, "store": True}
    answer = post(gateway, body)
    assert answer.status_code == 200
    assert fake_openai.requests[-1]["raw"] == orjson.dumps(body)
    assert fake_openai.requests[-1]["path"] == "/v1/responses"
    document = answer.json()
    assert document["id"].startswith("resp_") and not document["id"].startswith("resp_fake")
    assert document["output"][0]["id"].startswith("msg_fake")  # OpenAI's own items
    assert answer.headers["x-sluicegate-service"] == "oai"


def test_a_stream_passes_through_but_for_the_id(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    body = {
        "model": "gpt-4.1",
        "input": "explain, then the weather",
        "tools": [WEATHER, TIME],
        "stream": True,
    }
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
    ) as answer:
        data = answer.read()
    ours, theirs = events(data), events(fake_openai.sent[-1])
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    for (name, mine), (_, sent) in zip(ours, theirs, strict=True):
        if name in LIFECYCLE:
            payload = json.loads(mine.split(b"data: ", 1)[1])
            assert payload["response"]["id"].startswith("resp_")
            assert not payload["response"]["id"].startswith("resp_fake")
        else:
            assert mine == sent  # byte for byte


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_then_its_output_by_previous_response_id(
    gateway: RunningGateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    sdk = client(gateway)
    ask: dict[str, Any] = {"model": "gpt-4.1", "input": "what is the weather?", "tools": [WEATHER]}

    def create(**kwargs: Any) -> Any:
        if not stream:
            return sdk.responses.create(**kwargs)
        with sdk.responses.stream(**kwargs) as events:
            return events.get_final_response()

    first = create(**ask)
    [call] = first.output
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}
    second = create(model="gpt-4.1", previous_response_id=first.id, input=[output], tools=[WEATHER])
    assert second.output_text == "Tool results: rainy"
    assert second.previous_response_id == first.id
    sent = fake_openai.requests[-1]["body"]
    assert "previous_response_id" not in sent
    assert [i.get("type", "message") for i in sent["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_streaming_equals_not_streaming(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    for ask in (
        {"model": "gpt-4.1", "input": "hi"},
        {"model": "gpt-4.1", "input": "explain, then the weather", "tools": [WEATHER, TIME]},
        {"model": "gpt-4.1", "input": "ping", "text": {"format": SCHEMA}},
    ):
        whole = sdk.responses.create(**ask)
        with sdk.responses.stream(**ask) as events:
            final = events.get_final_response()
        assert shape(final) == shape(whole)
    assert json.loads(whole.output_text) == {"echo": "ping"}


def test_openai_runs_its_built_in_tools(gateway: RunningGateway) -> None:
    answer = client(gateway).responses.create(
        model="gpt-4.1", input="news", tools=[{"type": "web_search"}]
    )
    assert [i.type for i in answer.output] == ["web_search_call", "message"]
    assert answer.output_text == "Searched: news"


def test_a_follow_up_to_openai_answered_by_anthropic(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="gpt-4.1", input="news", tools=[{"type": "web_search"}])
    second = sdk.responses.create(model="claude-haiku", input="more", previous_response_id=first.id)
    assert second.output_text == "Hello from the fake: more"
    third = sdk.responses.create(model="gpt-4.1", input="again", previous_response_id=second.id)
    assert third.output_text == "Hello from the fake: again"
    got = sdk.responses.retrieve(third.id)
    assert got.output_text == third.output_text
    items = sdk.responses.input_items.list(third.id, order="asc").data
    assert [i.type for i in items] == [
        "message",
        "web_search_call",
        "message",
        "message",
        "message",
        "message",
    ]
    sdk.responses.delete(third.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(third.id)


def test_reasoning_items_with_encrypted_content_pass_both_ways(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(
        model="reasoner-1",
        input="think",
        store=False,
        include=["reasoning.encrypted_content"],
        reasoning={"effort": "low"},
    )
    reasoning = first.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content and reasoning.encrypted_content.startswith("openai-sealed")
    again = [
        *[i.model_dump(exclude_none=True) for i in first.output],
        {"role": "user", "content": "more"},
    ]
    sdk.responses.create(model="reasoner-1", input=again, store=False)
    sent = fake_openai.requests[-1]["body"]["input"]
    assert sent[0]["encrypted_content"] == reasoning.encrypted_content


def test_a_failure_after_the_stream_began(gateway: RunningGateway) -> None:
    kinds: list[str] = []
    numbers: list[int] = []
    with client(gateway).responses.create(model="drop-stream", input="a b c", stream=True) as s:
        for event in s:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
    assert kinds[-1] == "response.failed"
    assert numbers == list(range(len(numbers)))


def test_input_tokens_are_counted_by_openai(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="gpt-4.1", input="one two three")
    counted = sdk.responses.input_tokens.count(
        model="gpt-4.1", input="four five", previous_response_id=first.id
    )
    sent = fake_openai.requests[-1]
    assert sent["path"] == "/v1/responses/input_tokens"
    assert "previous_response_id" not in sent["body"] and len(sent["body"]["input"]) == 3
    assert counted.input_tokens > 1000  # the fake's count, not an estimate


def test_openais_usage_is_counted(gateway: RunningGateway) -> None:
    """Tokens from the Responses usage of OpenAI's own answers, whole and streamed."""

    def tokens(kind: str) -> float:
        text = httpx.get(f"{gateway.url}/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("sluicegate_tokens_total{")
            and 'service="oai"' in line
            and f'type="{kind}"' in line
        )

    sdk = client(gateway)
    before = tokens("input"), tokens("output")
    whole = sdk.responses.create(model="gpt-4.1", input="count these words please")
    with sdk.responses.stream(model="gpt-4.1", input="count these words please") as events:
        streamed = events.get_final_response()
    assert whole.usage is not None and streamed.usage is not None
    deadline = time.monotonic() + 5
    while tokens("output") - before[1] < 2 * whole.usage.output_tokens:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert tokens("input") - before[0] == 2 * whole.usage.input_tokens
    assert tokens("output") - before[1] == 2 * whole.usage.output_tokens
