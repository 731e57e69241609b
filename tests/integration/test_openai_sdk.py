"""The official openai SDK, unchanged, against a running gateway and a fake OpenAI upstream."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say something nice"},
]


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def test_chat_completion(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    completion = client.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Hello from the fake: Say something nice"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    # The rule rewrote the model; the upstream saw the target's model.
    assert fake_openai.last["body"]["model"] == "gpt-4o-mini"


def test_streamed_text_equals_whole_text_and_usage_comes_last(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="chat",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_usage_request_has_no_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="chat", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(getattr(c, "usage", None) is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_mock_provider_through_sdk(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="demo-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert whole.choices[0].message.content == "mock: Say something nice"
    assert whole.usage is not None and whole.usage.completion_tokens == 4
    chunks = list(
        client.chat.completions.create(
            model="demo-model",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_sdk_sees_gateway_errors_as_typed_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fail-429", messages=MESSAGES)  # type: ignore[arg-type]


def test_models_lists_only_what_the_key_may_use(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {
        "gpt-4o-mini",
        "chat",
        "down-model",
        "slow",
        "stall-stream",
        "keyed-model",
        "demo-model",
        "drop-stream",
    }
    assert "team-b-only" not in ids  # another consumer's rule
    assert not any("*" in i for i in ids)  # glob patterns are not listed


def test_one_model_is_retrieved_when_the_key_may_use_it(client: openai.OpenAI) -> None:
    model = client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object) == ("gpt-4o-mini", "model")
    # A name a glob rule of this key matches is served too, so it is a model here.
    assert client.models.retrieve("fake-anything").id == "fake-anything"
    for missing in ("team-b-only", "gpt-17"):  # another consumer's rule; no rule at all
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve(missing)
        assert info.value.code == "model_not_found"


def test_embeddings_pass_through(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    result = client.embeddings.create(model="fake-embed", input="hello")
    assert result.data[0].embedding == [0.1, 0.2]
    assert fake_openai.last["path"] == "/v1/embeddings"


def test_models_lists_the_catalog_models_a_glob_rule_serves(start_gateway: Any) -> None:
    gateway = start_gateway(
        {
            "services": [{"name": "m", "provider": "mock"}],
            "pricing": {"gpt-4o-house-tune": {"input": 1.0, "output": 2.0}},
            "rules": [
                {
                    "name": "oai",
                    "match": {"models": ["gpt-4o*", "alias"]},
                    "targets": [{"service": "m"}],
                },
                {"name": "other", "match": {"models": ["claude-*"]}, "targets": [{"service": "m"}]},
            ],
            "consumers": [{"name": "a", "keys": [KEY], "rules": ["oai"]}],
        }
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "alias"  # the rule's own names first
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4o-house-tune"} <= set(ids)
    assert not any(i.startswith("claude") for i in ids)  # another rule's, not this key's
    assert not any("*" in i for i in ids)
