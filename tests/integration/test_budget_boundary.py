"""Budgets through a running gateway: the same boundary (refused once spend >= budget)
for the consumer's and the gateway's budget, with the counters in process or in Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.gateway import RunningGateway

Start = Callable[[dict[str, Any]], RunningGateway]
# Priced at $1 per token, the mock's answer (3 prompt + 4 completion tokens) costs $7.
PRICING = {"m": {"input": 1_000_000, "output": 1_000_000}}


def config(backend: str) -> dict[str, Any]:
    gateway: dict[str, Any] = {"name": f"t{uuid.uuid4().hex[:8]}"}
    if backend == "redis":
        gateway.update(redis="redis://127.0.0.1:6379/0", redis_failure="closed")
    return {
        "gateway": gateway,
        "pricing": PRICING,
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "demo"}]}],
        "consumers": [{"name": "team-a", "keys": [KEY]}, {"name": "team-b", "keys": [OTHER_KEY]}],
    }


def ask(url: str, key: str = KEY) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "m", "messages": [{"role": "user", "content": "a b c"}]},
        timeout=10,
    )


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize(("budget", "served"), [(14, 2), (14.000001, 3)])
def test_a_consumer_budget(start_gateway: Start, backend: str, budget: float, served: int) -> None:
    data = config(backend)
    data["consumers"][0]["budget"] = {"usd": budget, "window": "1d"}
    gateway = start_gateway(data)
    statuses = [ask(gateway.url).status_code for _ in range(served + 1)]
    assert statuses == [200] * served + [429]
    refused = ask(gateway.url)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert ask(gateway.url, OTHER_KEY).status_code == 200  # team-b has no budget


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize(("budget", "served"), [(21, 3), (20.999999, 3), (21.000001, 4)])
def test_the_gateway_budget(start_gateway: Start, backend: str, budget: float, served: int) -> None:
    data = config(backend)
    data["gateway"]["budget"] = {"usd": budget, "window": "1d"}
    gateway = start_gateway(data)
    keys = [KEY, OTHER_KEY] * 3
    statuses = [ask(gateway.url, keys[i]).status_code for i in range(served + 1)]
    assert statuses == [200] * served + [429]
    assert ask(gateway.url, OTHER_KEY).json()["error"]["code"] == "budget_exceeded"
