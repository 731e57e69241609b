"""Policies on /v1/responses as on every route: the exact cache, guardrails out (whole and
streamed, the kept response being what the client saw) and in (a follow-up to OpenAI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    http = {"protocol": "http", "host": "127.0.0.1", "port": fake.port, "retries": 0}
    config: dict[str, Any] = {
        "gateway": {"store": f"sqlite:///{tmp_path_factory.mktemp('p') / 'sluicegate.db'}"},
        "services": [
            {**http, "name": "compat", "provider": "openai-compatible"},
            {**http, "name": "oai", "provider": "openai"},
        ],
        "rules": [
            {
                "name": "cached",
                "match": {"models": ["cached-*"]},
                "targets": [{"service": "compat"}],
                "policies": {"cache": {"mode": "exact", "ttl": "10m"}},
            },
            {
                "name": "guarded",
                "match": {"models": ["guarded-*"]},
                "targets": [{"service": "compat"}],
                "policies": {
                    "guardrails": {
                        "deny": [
                            {
                                "name": "f",
                                "words": ["fake"],
                                "applies_to": "response",
                                "action": "redact",
                            }
                        ]
                    }
                },
            },
            {
                "name": "oai-out",
                "match": {"models": ["gpt-out-*"]},
                "targets": [{"service": "oai"}],
                "policies": {
                    "guardrails": {
                        "deny": [
                            {
                                "name": "f",
                                "words": ["fake"],
                                "applies_to": "response",
                                "action": "redact",
                            }
                        ]
                    }
                },
            },
            {
                "name": "framed",
                "match": {"models": ["framed-*"]},
                "targets": [{"service": "compat"}],
                "policies": {
                    "transform": {"system_prefix": "You are the support assistant."},
                    "guardrails": {"params": {"max_tokens": 100}},
                },
            },
            {
                "name": "oai-guarded",
                "match": {"models": ["gpt-*"]},
                "targets": [{"service": "oai"}],
                "policies": {
                    "guardrails": {
                        "deny": [
                            {
                                "name": "s",
                                "words": ["bluebird"],
                                "applies_to": "request",
                                "action": "redact",
                            }
                        ]
                    }
                },
            },
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_the_exact_cache_answers_a_repeat(
    gateway: RunningGateway, fake: FakeOpenAI, stream: bool
) -> None:
    sdk = client(gateway)
    ask = {"model": "cached-model", "input": f"cache me {stream}", "stream": stream}
    results = []
    for _ in range(2):
        raw = sdk.responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
        parsed = raw.parse()
        if stream:
            parsed = next(e.response for e in parsed if e.type == "response.completed")
        results.append((raw.headers["x-sluicegate-cache"], parsed))
        calls = len(fake.requests)
    assert [cache for cache, _ in results] == ["miss", "hit"]
    assert calls == len(fake.requests)
    first, second = results[0][1], results[1][1]
    assert second.output_text == first.output_text == f"Hello from the fake: cache me {stream}"
    assert second.id != first.id
    assert sdk.responses.retrieve(second.id).output_text == second.output_text


@pytest.mark.parametrize("stream", [False, True])
def test_guardrails_out_and_the_kept_response_agree(gateway: RunningGateway, stream: bool) -> None:
    sdk = client(gateway)
    if stream:
        with sdk.responses.stream(model="guarded-model", input="hi") as events:
            answer = events.get_final_response()
    else:
        answer = sdk.responses.create(model="guarded-model", input="hi")
    assert "fake" not in answer.output_text and answer.output_text.endswith(": hi")
    assert sdk.responses.retrieve(answer.id).output_text == answer.output_text


def test_guardrails_in_on_a_follow_up_to_openai(gateway: RunningGateway, fake: FakeOpenAI) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="gpt-4.1", input="hello")
    sdk.responses.create(model="gpt-4.1", input="tell bluebird", previous_response_id=first.id)
    sent = fake.requests[-1]["body"]["input"]
    assert len(sent) == 3  # the earlier turn once, then the new input
    assert "bluebird" not in str(sent).lower()
    assert sent[0]["content"] == [{"type": "input_text", "text": "hello"}]


@pytest.mark.parametrize("stream", [False, True])
def test_guardrails_out_on_openais_own_answers(gateway: RunningGateway, stream: bool) -> None:
    sdk = client(gateway)
    ask: dict[str, Any] = {"model": "gpt-out-1", "input": "hi"}
    if stream:
        with sdk.responses.stream(**ask) as events:
            answer = events.get_final_response()
    else:
        answer = sdk.responses.create(**ask)
    assert "fake" not in answer.output_text and answer.output_text.endswith(": hi")
    assert answer.id.startswith("resp_") and not answer.id.startswith("resp_fake")
    assert sdk.responses.retrieve(answer.id).output_text == answer.output_text


def test_a_transforms_system_prefix_frames_the_instructions(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    client(gateway).responses.create(model="framed-1", input="hi", instructions="Be brief.")
    sent = fake.requests[-1]["body"]["messages"][0]
    assert sent["role"] == "system"
    assert sent["content"].startswith("You are the support assistant.")
    assert sent["content"].endswith("Be brief.")


def test_the_params_schema_caps_max_output_tokens(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).responses.create(model="framed-1", input="hi", max_output_tokens=500)
    assert caught.value.param == "max_output_tokens"
    assert caught.value.code == "parameter_out_of_range"


def test_input_tokens_are_screened_before_the_provider_counts_them(
    gateway: RunningGateway, fake: FakeOpenAI
) -> None:
    """Counting sends the text to the provider: the rule's request guardrails apply, as they
    do on /v1/messages/count_tokens."""
    sdk = client(gateway)
    before = len(fake.requests)
    counted = sdk.responses.input_tokens.count(model="gpt-4.1", input="tell bluebird the plan")
    asked = fake.requests[before:]
    assert [r["path"] for r in asked] == ["/v1/responses/input_tokens"]
    assert "bluebird" not in str(asked[0]["body"]).lower()
    assert counted.input_tokens > 0
