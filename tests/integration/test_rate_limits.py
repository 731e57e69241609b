"""Rate limits: exact, per scope, with OpenAI's headers; shared by instances through Redis."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import KEY, OTHER_KEY, settled
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.redis_servers import redis_servers

Start = Callable[[dict[str, Any]], RunningGateway]
MESSAGES = [{"role": "user", "content": "a b c"}]  # the mock: 3 prompt + 4 completion tokens


def config(**rule_policy: Any) -> dict[str, Any]:
    return {
        "gateway": {"name": f"t{uuid.uuid4().hex[:8]}"},
        "services": [
            {"name": "demo", "provider": "mock"},
            {"name": "down", "provider": "mock", "mock_error_status": 500, "retries": 0},
        ],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["m"]},
                "targets": [{"service": "demo"}],
                "policies": {"rate_limit": rule_policy} if rule_policy else {},
            },
            {
                "name": "broken",
                "match": {"models": ["broken"]},
                "targets": [{"service": "down"}],
                "policies": {"rate_limit": rule_policy} if rule_policy else {},
            },
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}, {"name": "team-b", "keys": [OTHER_KEY]}],
    }


def ask(url: str, key: str = KEY, model: str = "m", **body: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": MESSAGES, **body},
        timeout=10,
    )


def spend(url: str, key: str = KEY, model: str = "m", **body: Any) -> httpx.Response:
    """``ask``, returned once the gateway settled the request: it corrects tokens and spend
    after the client has its answer, and the next request must see them."""
    return settled(url, lambda: ask(url, key, model, **body))


def test_requests_per_consumer_with_headers(start_gateway: Start) -> None:
    gateway = start_gateway(config(requests=5, window="1m"))
    answers = [ask(gateway.url) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    first, refused = answers[0], answers[5]
    assert first.headers["x-ratelimit-limit-requests"] == "5"
    assert first.headers["x-ratelimit-remaining-requests"] == "4"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert answers[4].headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "5 requests per 1m0s per consumer (rule:chat)" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert ask(gateway.url, OTHER_KEY).status_code == 200  # another consumer has its own window


def test_several_windows_at_once(start_gateway: Start) -> None:
    data = config()
    data["rules"][0]["policies"] = {
        "rate_limit": [{"requests": 3, "window": "1s"}, {"requests": 4, "window": "1h"}]
    }
    gateway = start_gateway(data)
    assert [ask(gateway.url).status_code for _ in range(4)] == [200, 200, 200, 429]
    time.sleep(1.1)
    assert [ask(gateway.url).status_code for _ in range(2)] == [200, 429]  # the hourly one is full


def test_token_limit_stops_exactly_and_releases_failed_requests(start_gateway: Start) -> None:
    # Each call reserves 8 (prompt estimate) + 1 (max_tokens) = 9 and then uses 7.
    gateway = start_gateway(config(tokens=30, window="1m"))
    statuses = [spend(gateway.url, max_tokens=1).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # 7+7+7 = 21 used, 21+9 fits, 28+9 does not
    other = start_gateway(config(tokens=30, window="1m"))
    for _ in range(5):  # failures use no tokens: their reservations are released
        assert spend(other.url, model="broken", max_tokens=1).status_code == 502
    assert [spend(other.url, max_tokens=1).status_code for _ in range(4)] == [200] * 4
    refused = spend(other.url, max_tokens=1)
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-limit-tokens"] == "30"


def test_a_small_token_limit_serves_requests_without_max_tokens(start_gateway: Start) -> None:
    # 8 (prompt estimate) + 1024 (estimate_max_tokens) is more than 20 could ever hold: the
    # reservation is cut to the limit, and settling corrects it to the 7 tokens used.
    gateway = start_gateway(config(tokens=20, window="1m"))
    first = spend(gateway.url)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining-tokens"] == "0"
    # 7 are used now: the next reservation (up to the limit) waits for them to expire.
    refused = spend(gateway.url)
    assert refused.status_code == 429
    assert "retry-after" in refused.headers


def test_a_request_that_can_never_fit_a_token_limit_is_refused_at_once(
    start_gateway: Start,
) -> None:
    gateway = start_gateway(config(tokens=20, window="1m"))
    long = [{"role": "user", "content": "word " * 200}]
    refused = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "m", "messages": long},
        timeout=10,
    )
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers
    error = refused.json()["error"]
    assert error["code"] == "tokens_exceed_limit"
    assert "20 tokens per 1m0s" in error["message"]
    prompt = int(error["message"].split("prompt is about ")[1].split(" ")[0])
    assert prompt > 20
    assert spend(gateway.url).status_code == 200  # it took nothing from the limit


def test_gateway_and_consumer_limits(start_gateway: Start) -> None:
    data = config()
    data["gateway"]["limits"] = {"requests": 3, "window": "1m", "per": "global"}
    data["consumers"][1]["limits"] = {"requests": 1, "window": "1m"}
    gateway = start_gateway(data)
    assert ask(gateway.url, OTHER_KEY).status_code == 200
    assert ask(gateway.url, OTHER_KEY).status_code == 429  # team-b's own limit
    assert [ask(gateway.url).status_code for _ in range(3)] == [200, 200, 429]  # the gateway's


@pytest.fixture
def three_gateways(tmp_path: Path) -> Iterator[list[str]]:
    data = config(requests=100, window="1m", per="global")
    data["gateway"]["redis"] = "redis://127.0.0.1:6379/0"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    ports = [free_port() for _ in range(3)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluicegate",
                "serve",
                "--config",
                str(path),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


def test_three_instances_share_one_limit_exactly(three_gateways: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        statuses = list(pool.map(lambda i: ask(three_gateways[i % 3]).status_code, range(300)))
    assert statuses.count(200) == 100
    assert statuses.count(429) == 200


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts (and starts again) a Redis of this test's own, always on the same port."""
    port = free_port()
    with redis_servers(tmp_path) as servers:

        def start() -> subprocess.Popen[bytes]:
            return servers.standalone(port)

        start.port = port  # type: ignore[attr-defined]
        yield start


@pytest.mark.parametrize(("mode", "while_down"), [("open", 200), ("closed", 503)])
def test_redis_outage_follows_redis_failure_and_recovers(
    start_gateway: Start, private_redis: Any, mode: str, while_down: int
) -> None:
    redis = private_redis()
    data = config(requests=2, window="1m")
    data["gateway"].update(redis=f"redis://127.0.0.1:{private_redis.port}/0", redis_failure=mode)
    gateway = start_gateway(data)
    assert [ask(gateway.url).status_code for _ in range(3)] == [200, 200, 429]
    redis.kill()
    redis.wait()
    down = ask(gateway.url)
    assert down.status_code == while_down
    up_metric = 'sluicegate_ratelimit_backend_up{gateway="' + data["gateway"]["name"] + '"}'
    assert f"{up_metric} 0.0" in httpx.get(gateway.url + "/metrics").text
    if while_down == 503:
        assert down.json()["error"]["code"] == "rate_limiter_unavailable"
    private_redis()  # a fresh, empty Redis on the same port
    assert [ask(gateway.url).status_code for _ in range(3)] == [200, 200, 429]
    assert f"{up_metric} 1.0" in httpx.get(gateway.url + "/metrics").text


@pytest.mark.parametrize(("budget", "served"), [(20, 3), (21, 3), (21.000001, 4)])
def test_budgets_refuse_once_spend_reaches_the_budget(
    start_gateway: Start, budget: float, served: int
) -> None:
    # Priced at $1 per token, each call (3 + 4 tokens) costs exactly $7.
    data = config()
    data["pricing"] = {"m": {"input": 1_000_000, "output": 1_000_000}}
    data["consumers"][0]["budget"] = {"usd": budget, "window": "30d"}
    gateway = start_gateway(data)
    statuses = [spend(gateway.url).status_code for _ in range(served + 1)]
    assert statuses == [200] * served + [429]
    refused = spend(gateway.url)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert spend(gateway.url, OTHER_KEY).status_code == 200  # team-b has no budget


def test_a_gateway_budget_covers_everyone(start_gateway: Start) -> None:
    data = config()
    data["pricing"] = {"m": {"input": 1_000_000, "output": 1_000_000}}
    data["gateway"]["budget"] = {"usd": 14, "window": "1d"}
    gateway = start_gateway(data)
    assert spend(gateway.url).status_code == 200
    assert spend(gateway.url, OTHER_KEY).status_code == 200
    assert spend(gateway.url).json()["error"]["code"] == "budget_exceeded"
    assert spend(gateway.url, OTHER_KEY).status_code == 429


def test_a_stream_whose_client_did_not_ask_for_usage_is_settled_from_the_providers(
    start_gateway: Start,
) -> None:
    # Streamed without include_usage: the gateway asks the mock for the usage all the same,
    # 3 prompt tokens and 4 of "mock: a b c", 7, where the reservation was the prompt
    # estimate (8) plus max_tokens (1), 9. (Counted from the text it would be 8 + 3, 11,
    # and the third request would be refused: docs/limits.md.)
    gateway = start_gateway(config(tokens=25, window="1m"))
    statuses = [spend(gateway.url, max_tokens=1, stream=True).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # 7 + 7 + 7 = 21; 21 + 9 > 25
