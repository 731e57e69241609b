"""Semantic routes with the real local model (all-MiniLM-L6-v2, offline): prompts about
code go to the code route's targets, small talk to the chat route's, anything else to the
rule's own targets; a conditional route that matches first saves the embedding."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import openai_service
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
