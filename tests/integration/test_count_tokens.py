"""``/v1/messages/count_tokens`` is a request like any other: request limits refuse it, and it
leaves an audit row (endpoint ``count_tokens``) and metrics; it spends no tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, eventually, settled
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-count-tokens-0001"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def gateway(fake_anthropic: FakeAnthropic, tmp_path: Path) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"admin_key": ADMIN_KEY},
        "audit": {
            "path": str(tmp_path / "audit.db"),
            "spill_path": str(tmp_path / "spill.jsonl"),
            "flush_interval": "20ms",
        },
        "services": [
            {
                "name": "claude",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_anthropic.port,
                "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
            },
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [
            {
                "name": "counted",
                "match": {"models": ["claude-counted"]},
                "targets": [{"service": "claude", "model": "claude-haiku-4-5"}],
                "policies": {"rate_limit": {"requests": 2, "window": "1m"}},
            },
            {
                "name": "estimated",
                "match": {"models": ["mock-counted"]},
                "targets": [{"service": "demo"}],
                "policies": {"rate_limit": {"requests": 2, "window": "1m"}},
            },
            {
                "name": "few-tokens",
                "match": {"models": ["few-tokens"]},
                "targets": [{"service": "demo"}],
                "policies": {"rate_limit": {"tokens": 30, "window": "1m"}},
            },
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def count(gateway: RunningGateway, model: str, text: str = "how many tokens") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return settled(
        gateway.url,
        lambda: httpx.post(
            gateway.url + "/v1/messages/count_tokens", json=body, headers=HEADERS, timeout=10
        ),
    )


@pytest.mark.parametrize("model", ["claude-counted", "mock-counted"])
def test_request_limits_refuse_the_third_count(gateway: RunningGateway, model: str) -> None:
    first, second, third = (count(gateway, model) for _ in range(3))
    assert first.status_code == 200 and second.status_code == 200, first.text
    assert first.json()["input_tokens"] > 0
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert third.status_code == 429, third.text
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert int(third.headers["retry-after"]) >= 1


def test_counting_spends_no_tokens(gateway: RunningGateway) -> None:
    long = "word " * 200  # far more than the rule's 30 tokens a minute
    for _ in range(3):
        assert count(gateway, "few-tokens", long).status_code == 200
    body = {"model": "few-tokens", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    chat = httpx.post(
        gateway.url + "/v1/messages",
        json=body,
        headers=HEADERS,
        timeout=10,
    )
    assert chat.status_code == 200, chat.text


def test_counts_are_in_the_audit_log_and_the_metrics(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    ids = [count(gateway, "claude-counted").headers["x-request-id"] for _ in range(3)]
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    def rows() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = admin.get(
            "/admin/logs", params={"endpoint": "count_tokens"}
        ).json()["data"]
        assert {r["request_id"] for r in found} == set(ids)
        return found

    by_id = {r["request_id"]: r for r in eventually(rows)}
    first, refused = by_id[ids[0]], by_id[ids[2]]
    assert first["endpoint"] == "count_tokens" and first["status"] == 200
    assert first["rule"] == "counted" and first["service"] == "claude"
    assert first["consumer"] == "team-a" and first["attempts"] == 1
    assert first["model"] == "claude-counted"
    assert not first["input_tokens"] and not first["output_tokens"] and not first["cost_usd"]
    assert refused["status"] == 429 and refused["error_type"] == "rate_limit_error"
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert 'sluicegate_ratelimited_total{gateway="default",rule="counted"} 1.0' in metrics
    assert any(
        line.startswith("sluicegate_requests_total{")
        and 'rule="counted"' in line
        and 'status="2xx"' in line
        and line.endswith(" 2.0")
        for line in metrics.splitlines()
    )
    assert "sluicegate_tokens_total{" not in metrics  # counting tokens uses none
