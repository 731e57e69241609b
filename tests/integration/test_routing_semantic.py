"""Semantic routes with the real local model (all-MiniLM-L6-v2, offline): prompts about
code go to the code route's targets, small talk to the chat route's, anything else to the
rule's own targets; a conditional route that matches first saves the embedding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import eventually, openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

pytest.importorskip("numpy")

CODE = [
    "fix this python error",
    "write a SQL query",
    "why does my function return None",
    "refactor this JavaScript class",
    "how do I reverse a linked list in C",
]
SMALL_TALK = ["hi, how are you?", "good morning!", "thanks, have a nice day", "tell me a joke"]


@pytest.fixture(scope="module")
def gateway(fake_openai: FakeOpenAI) -> Iterator[RunningGateway]:
    names = ["cheap", "strong", "coder-1", "coder-2", "chatty"]
    config = {
        "services": [openai_service(n, fake_openai.port, healthchecks={}) for n in names],
        "rules": [
            {
                # The cheapest model able to serve the request, unless the prompt is about
                # code: then the fastest of two coders; small talk goes to a chatty one.
                "name": "auto",
                "match": {"models": ["auto"]},
                "strategy": "cheapest",
                "targets": [
                    {"service": "strong", "model": "gpt-4o"},
                    {"service": "cheap", "model": "gpt-4o-mini"},
                ],
                "routes": [
                    {
                        "name": "pinned",
                        "when": {"headers": {"x-pin": "strong"}},
                        "targets": [{"service": "strong", "model": "gpt-4o"}],
                    }
                ],
                "semantic": {
                    "threshold": 0.4,
                    "routes": [
                        {
                            "name": "code",
                            "examples": CODE,
                            "strategy": "fastest",
                            "targets": [
                                {"service": "coder-1", "model": "gpt-4.1"},
                                {"service": "coder-2", "model": "gpt-4.1-mini"},
                            ],
                        },
                        {
                            "name": "small-talk",
                            "examples": SMALL_TALK,
                            "targets": [{"service": "chatty", "model": "gpt-4.1-nano"}],
                        },
                    ],
                },
            }
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def ask(gateway: RunningGateway, text: str, **headers: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", default_headers=headers)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-sluicegate-service"], raw.headers["x-sluicegate-route"]


@pytest.mark.parametrize(
    "text",
    [
        "my python script throws a KeyError, how do I fix it?",
        "write a query that joins the orders and customers tables",
    ],
)
def test_prompts_about_code_go_to_the_code_route(gateway: RunningGateway, text: str) -> None:
    service, route = ask(gateway, text)
    assert service in ("coder-1", "coder-2"), route
    assert route.startswith("semantic code ("), route
    assert ">= 0.4): fastest of 2 able targets" in route, route


@pytest.mark.parametrize("text", ["hey there, how is your day going?", "hello friend"])
def test_small_talk_goes_to_the_small_talk_route(gateway: RunningGateway, text: str) -> None:
    service, route = ask(gateway, text)
    assert service == "chatty", route
    assert route.startswith("semantic small-talk ("), route


@pytest.mark.parametrize(
    "text", ["What is the capital of Australia?", "Explain the causes of World War I"]
)
def test_unknown_topics_go_to_the_default(gateway: RunningGateway, text: str) -> None:
    service, route = ask(gateway, text)
    assert service == "cheap", route  # the rule's own targets: cheapest of them
    assert route.startswith("default (nearest semantic "), route
    assert "< 0.4): cheapest of 2 able targets: cheap/gpt-4o-mini" in route, route


def test_a_conditional_route_is_asked_before_the_semantic_ones(gateway: RunningGateway) -> None:
    service, route = ask(gateway, "fix this python error", **{"x-pin": "strong"})
    assert service == "strong"
    assert route.startswith("route pinned (header x-pin)"), route


def test_a_streamed_request_is_routed_alike(gateway: RunningGateway) -> None:
    body = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": "why does my function return None"}],
    }
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["x-sluicegate-route"].startswith("semantic code (")
        assert b"[DONE]" in response.read()


def test_an_embeddings_rule_can_be_the_embedder_and_a_broken_one_leaves_the_default(
    fake_openai: FakeOpenAI,
) -> None:
    def rule(name: str, embedder: str) -> dict[str, object]:
        return {
            "name": name,
            "match": {"models": [name]},
            "targets": [{"service": "cheap", "model": "gpt-4o-mini"}],
            "semantic": {
                "threshold": 0.9,
                "embedder": embedder,
                "routes": [
                    {
                        "name": "any",
                        "examples": ["one example", "another one"],
                        "targets": [{"service": "strong", "model": "gpt-4o"}],
                    }
                ],
            },
        }

    config = {
        "services": [
            openai_service("cheap", fake_openai.port, healthchecks={}),
            openai_service("strong", fake_openai.port, healthchecks={}),
            openai_service("embedder", fake_openai.port, healthchecks={}),
        ],
        "rules": [
            {
                "name": "embed",
                "match": {"models": ["house-embed"]},
                "targets": [{"service": "embedder", "model": "text-embedding-3-small"}],
            },
            rule("routed", "house-embed"),
            rule("broken", "no-such-embedder"),
        ],
    }
    running = RunningGateway(config).start()
    try:
        # Said at load (and by config validate): the broken one's embedder is served by no rule.
        assert any(
            w.startswith("rules[2].semantic.embedder: no rule serves the model 'no-such-embedder'")
            for w in running.runtime.table.warnings
        ), running.runtime.table.warnings
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused")
        before = sum(1 for r in fake_openai.requests if r["path"].endswith("/embeddings"))
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="routed", messages=[{"role": "user", "content": "hello"}]
            )
            # The fake embeds every text alike: every prompt is nearest to the examples.
            assert raw.headers["x-sluicegate-service"] == "strong"
            assert raw.headers["x-sluicegate-route"].startswith("semantic any (1.00 >= 0.9)")
        embedded = sum(1 for r in fake_openai.requests if r["path"].endswith("/embeddings"))
        assert embedded - before == 2 + 2  # the two examples once, then one per request
        raw = client.chat.completions.with_raw_response.create(
            model="broken", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-sluicegate-service"] == "cheap"
        route = raw.headers["x-sluicegate-route"]
        assert route.startswith("default (semantic routes: the embedder failed: "), route
    finally:
        running.stop()


def test_a_config_change_keeps_the_embedded_examples(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = {
        "auth": "none",
        "services": [
            openai_service("cheap", fake_openai.port, healthchecks={}),
            openai_service("strong", fake_openai.port, healthchecks={}),
        ],
        "rules": [
            {
                "name": "embed",
                "match": {"models": ["house-embed"]},
                "targets": [{"service": "cheap", "model": "text-embedding-3-small"}],
            },
            {
                "name": "routed",
                "match": {"models": ["routed"]},
                "targets": [{"service": "cheap", "model": "gpt-4o-mini"}],
                "semantic": {
                    "threshold": 0.9,
                    "embedder": "house-embed",
                    "routes": [
                        {
                            "name": "any",
                            "examples": ["one example", "another one", "a third"],
                            "targets": [{"service": "strong", "model": "gpt-4o"}],
                        }
                    ],
                },
            },
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    running = RunningGateway(path=path, poll_interval=0.1).start()

    def embedded() -> int:
        return sum(1 for r in fake_openai.requests if r["path"].endswith("/embeddings"))

    def ask() -> str:
        body = {"model": "routed", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(f"{running.url}/v1/chat/completions", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.headers["x-sluicegate-service"]

    try:
        before = embedded()
        assert ask() == "strong"
        assert embedded() - before == 3 + 1
        first = running.runtime.table
        config["rules"][1]["description"] = "changed"
        path.write_text(yaml.safe_dump(config))
        eventually(lambda: _swapped(running, first))
        before = embedded()
        assert ask() == "strong"
        assert embedded() - before == 1  # the request's text only
        config["rules"][1]["semantic"]["routes"][0]["examples"].append("a fourth")
        path.write_text(yaml.safe_dump(config))
        second = running.runtime.table
        eventually(lambda: _swapped(running, second))
        before = embedded()
        assert ask() == "strong"
        assert embedded() - before == 4 + 1  # new examples: embedded anew
    finally:
        running.stop()


def _swapped(gateway: RunningGateway, old: object) -> None:
    assert gateway.runtime.table is not old, "the file's change is not running yet"
