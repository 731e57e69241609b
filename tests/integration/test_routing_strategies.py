"""``fastest``, ``ordered`` and ``least-busy`` through a running gateway with real fake
upstreams: traffic follows the observed latency (and comes back after a recovery), the
first healthy target, and the fewest requests in flight."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture
def two() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    first, second = FakeOpenAI().start(), FakeOpenAI().start()
    yield first, second
    first.stop()
    second.stop()


def rule(strategy: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "chat",
        "match": {"models": ["chat"]},
        "strategy": strategy,
        "targets": [{"service": "a", "model": "gpt-4o-mini"}, {"service": "b", "model": "gpt-4o"}],
        **extra,
    }


def services(a: FakeOpenAI, b: FakeOpenAI, **extra: Any) -> list[dict[str, Any]]:
    return [openai_service("a", a.port, **extra), openai_service("b", b.port, **extra)]


def ask(client: httpx.Client) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response


def served_for(client: httpx.Client, seconds: float) -> list[str]:
    """The service of each request sent one after another for ``seconds``."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(ask(client).headers["x-sluicegate-service"])
    return out


def test_fastest_leaves_a_slow_upstream_within_seconds_and_returns_after_it_recovers(
    two: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = two
    b.delay = 0.15  # b is steadily slower
    gateway = RunningGateway({"services": services(a, b), "rules": [rule("fastest")]}).start()
    try:
        client = httpx.Client(base_url=gateway.url, timeout=10)
        first = served_for(client, 1.0)
        assert first[-10:].count("a") >= 9, first
        last = ask(client).headers["x-sluicegate-route"]
        assert last.startswith("default: fastest of 2 able targets: a/gpt-4o-mini ("), last

        a.delay = 0.5  # a turns slower still
        slow = served_for(client, 2.0)
        # One slow answer is enough to leave it; exploration tries it again now and then.
        assert slow[-8:].count("b") >= 7, slow
        assert slow.count("b") > slow.count("a"), slow

        a.delay = 0.0  # a recovers: the next exploration sees it, and traffic comes back
        recovered = served_for(client, 4.0)
        assert recovered[-10:].count("a") >= 9, recovered
    finally:
        gateway.stop()


def test_fastest_does_not_rank_first_a_target_that_only_fails(
    two: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    """A target that has never answered is not "0 ms": its failures make it slow, so it is
    tried again only when explored, and never shown as the fastest."""
    a, b = two
    b.delay = 0.05
    config = {
        # No passive ejection: the strategy alone must keep traffic off the failing target.
        "services": services(a, b, healthchecks={}, retries=0),
        "rules": [
            {
                **rule("fastest"),
                "targets": [
                    {"service": "a", "model": "fail-500"},
                    {"service": "b", "model": "gpt-4o"},
                ],
            }
        ],
    }
    gateway = RunningGateway(config).start()
    try:
        client = httpx.Client(base_url=gateway.url, timeout=10)
        routes = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            routes.append(ask(client).headers["x-sluicegate-route"])
        assert len(routes) >= 10, routes
        assert a.calls.get("fail-500", 0) <= 3, (a.calls, routes)
        assert not [r for r in routes if "a/fail-500 (0 ms)" in r], routes
        assert routes[-1].startswith("default: fastest of 2 able targets: b/gpt-4o ("), routes
    finally:
        gateway.stop()


def test_ordered_takes_the_first_healthy_target(
    two: tuple[FakeOpenAI, FakeOpenAI], closed_port: int
) -> None:
    a, b = two
    config = {
        "services": [
            openai_service("down", closed_port, retries=0),
            *services(a, b, healthchecks={}),
        ],
        "rules": [
            {
                **rule("ordered"),
                "targets": [
                    {"service": "down", "model": "gpt-4o-mini"},
                    {"service": "b", "model": "gpt-4o"},
                    {"service": "a", "model": "gpt-4o-mini"},
                ],
            }
        ],
    }
    gateway = RunningGateway(config).start()
    try:
        client = httpx.Client(base_url=gateway.url, timeout=10)
        # The first target cannot be reached: the next in order answers in the same request.
        response = ask(client)
        assert response.headers["x-sluicegate-service"] == "b"
        assert response.headers["x-sluicegate-attempts"] == "2"
        route = response.headers["x-sluicegate-route"]
        assert route == "default: ordered of 3 able targets: down/gpt-4o-mini first", route
        # Once passive health ejects it (5 failures), it is skipped before any attempt.
        for _ in range(6):
            ask(client)
        response = ask(client)
        assert response.headers["x-sluicegate-attempts"] == "1"
        assert response.headers["x-sluicegate-service"] == "b"
        assert "skipped down/gpt-4o-mini: unhealthy" in response.headers["x-sluicegate-route"]
    finally:
        gateway.stop()


def test_least_busy_sends_to_the_target_with_fewest_in_flight_and_skips_a_full_one(
    two: tuple[FakeOpenAI, FakeOpenAI],
) -> None:
    a, b = two
    a.delay = 1.0  # a's answers take a while: its requests stay in flight
    config = {
        "services": services(a, b, healthchecks={}),
        "rules": [
            {
                **rule("least-busy"),
                "targets": [
                    {"service": "a", "model": "gpt-4o-mini", "max_inflight": 1},
                    {"service": "b", "model": "gpt-4o", "max_inflight": 4},
                ],
            }
        ],
    }
    gateway = RunningGateway(config).start()
    try:
        client = httpx.Client(base_url=gateway.url, timeout=10)
        held: list[httpx.Response] = []
        # The first request goes to a (both idle, a listed first) and stays there a second.
        worker = threading.Thread(target=lambda: held.append(ask(client)))
        worker.start()
        time.sleep(0.3)
        response = ask(client)
        assert response.headers["x-sluicegate-service"] == "b"
        route = response.headers["x-sluicegate-route"]
        assert "least-busy of 1 able target: b/gpt-4o (0 in flight)" in route, route
        assert "skipped a/gpt-4o-mini: busy 1/1" in route, route
        worker.join()
        assert held[0].headers["x-sluicegate-service"] == "a"
    finally:
        gateway.stop()


def test_a_target_whose_provider_said_retry_after_is_skipped_until_then(
    fake_openai: FakeOpenAI,
) -> None:
    config = {
        "models": {"fail-429": {"input": 0.01, "output": 0.01}},  # the cheapest, and full
        "services": [
            openai_service("a", fake_openai.port, healthchecks={}),
            openai_service("b", fake_openai.port, healthchecks={}),
        ],
        "rules": [
            {
                **rule("cheapest"),
                "targets": [
                    {"service": "a", "model": "fail-429"},  # the fake: 429, Retry-After: 7
                    {"service": "b", "model": "gpt-4o"},
                ],
            }
        ],
    }
    gateway = RunningGateway(config).start()
    try:
        client = httpx.Client(base_url=gateway.url, timeout=10)
        first = ask(client)
        assert first.headers["x-sluicegate-service"] == "b"  # the next cheapest, same request
        assert first.headers["x-sluicegate-attempts"] == "2"
        second = ask(client)
        assert second.headers["x-sluicegate-attempts"] == "1"
        route = second.headers["x-sluicegate-route"]
        assert re.search(r"skipped a/fail-429: rate-limited [5-7]s", route), route
    finally:
        gateway.stop()
