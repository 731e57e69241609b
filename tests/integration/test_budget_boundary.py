"""Budgets through a running gateway: the same boundary (refused once spend >= budget)
for the budget of a consumer, a group, a minted key and the gateway, with the counters
in process or in Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, OTHER_KEY, settled
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import store_url

Start = Callable[[dict[str, Any]], RunningGateway]
# Priced at $1 per token, the mock's answer (3 prompt + 4 completion tokens) costs $7.
PRICING = {"m": {"input": 1_000_000, "output": 1_000_000}}
ADMIN_KEY = "adm-budget-test-0001"


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
    """One request, returned once the gateway settled it: spend is counted after the client
    has its answer, and whether the next request is refused depends on it."""
    return settled(
        url,
        lambda: httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "m", "messages": [{"role": "user", "content": "a b c"}]},
            timeout=10,
        ),
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


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize(("budget", "served"), [(14, 2), (14.000001, 3)])
def test_a_group_budget(start_gateway: Start, backend: str, budget: float, served: int) -> None:
    # Both consumers are in the group: they spend from one budget together.
    data = config(backend)
    data["groups"] = [{"name": "eng", "budget": {"usd": budget, "window": "1d"}}]
    for consumer in data["consumers"]:
        consumer["groups"] = ["eng"]
    gateway = start_gateway(data)
    keys = [KEY, OTHER_KEY] * 3
    statuses = [ask(gateway.url, keys[i]).status_code for i in range(served + 1)]
    assert statuses == [200] * served + [429]
    assert ask(gateway.url, KEY).json()["error"]["code"] == "budget_exceeded"


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize(("budget", "served"), [(14, 2), (14.000001, 3)])
def test_a_minted_key_budget(
    start_gateway: Start, tmp_path: Path, backend: str, budget: float, served: int
) -> None:
    with store_url("sqlite", tmp_path) as store:
        data = config(backend)
        data["gateway"].update(store=store, admin_key=ADMIN_KEY)
        gateway = start_gateway(data)
        made = httpx.post(
            gateway.url + "/admin/consumers/team-a/keys",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"budget": {"usd": budget, "window": "1d"}},
            timeout=10,
        )
        assert made.status_code == 201, made.text
        minted = made.json()["key"]
        statuses = [ask(gateway.url, minted).status_code for _ in range(served + 1)]
        assert statuses == [200] * served + [429]
        assert ask(gateway.url, minted).json()["error"]["code"] == "budget_exceeded"
        assert ask(gateway.url, KEY).status_code == 200  # the key's budget binds the key alone
