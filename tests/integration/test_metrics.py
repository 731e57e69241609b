"""Metrics move by exactly the expected amounts; the access log has one line per request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY, openai_service, wait_finished
from tests.fakes.faulty_server import FaultyUpstream
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

Start = Callable[[dict[str, Any]], RunningGateway]
AUTH = {"Authorization": f"Bearer {KEY}"}


def samples(gateway: RunningGateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(gateway.url + "/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    all_samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    total = 0.0
    for (sample_name, sample_labels), sample_value in all_samples.items():
        if sample_name == name and set(labels.items()) <= sample_labels:
            total += sample_value
    return total


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, start_gateway: Start) -> RunningGateway:
    broken = FaultyUpstream("broken").start()
    broken.mode = "503"
    gateway = start_gateway(
        {
            "gateway": {"access_log": True},
            "services": [
                openai_service("openai", fake_openai.port),
                {
                    "name": "broken",
                    "provider": "vllm",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": broken.port,
                    "retries": 1,
                    "retry_backoff": "1ms",
                },
            ],
            "rules": [
                {
                    "name": "chat",
                    "match": {"models": ["gpt-4o-mini"]},
                    "targets": [{"service": "openai"}],
                },
                {
                    "name": "failover",
                    "match": {"models": ["failover"]},
                    "targets": [{"service": "broken", "model": "x"}],
                    "fallbacks": [{"service": "openai", "model": "gpt-4o-mini"}],
                },
                {
                    "name": "only-broken",
                    "match": {"models": ["doomed"]},
                    "targets": [{"service": "broken"}],
                    "fallback_on": [],
                },
            ],
            "consumers": [{"name": "team-a", "keys": [KEY]}],
        }
    )
    yield gateway  # type: ignore[misc]
    broken.stop()


def chat(gateway: RunningGateway, model: str, stream: bool = False) -> httpx.Response:
    body = {
        "model": model,
        "stream": stream,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi there"}],
    }
    if not stream:
        del body["stream_options"]
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10)


def test_success_counts_request_tokens_and_cost(gateway: RunningGateway) -> None:
    before = samples(gateway)
    response = chat(gateway, "gpt-4o-mini")
    usage = response.json()["usage"]
    wait_finished(gateway.url, 1)  # counted just after the client has its answer
    after = samples(gateway)
    labels = {
        "rule": "chat",
        "service": "openai",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "consumer": "team-a",
    }
    assert (
        value(after, "sluicegate_requests_total", status="2xx", **labels)
        - value(before, "sluicegate_requests_total", status="2xx", **labels)
        == 1
    )
    assert (
        value(after, "sluicegate_tokens_total", type="input", service="openai")
        - value(before, "sluicegate_tokens_total", type="input", service="openai")
        == usage["prompt_tokens"]
    )
    assert (
        value(after, "sluicegate_tokens_total", type="output", service="openai")
        - value(before, "sluicegate_tokens_total", type="output", service="openai")
        == usage["completion_tokens"]
    )
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    expected_cost = (
        (usage["prompt_tokens"] - cached) * 0.15
        + cached * 0.075
        + usage["completion_tokens"] * 0.60
    ) / 1e6
    cost = value(after, "sluicegate_cost_usd_total", consumer="team-a") - value(
        before, "sluicegate_cost_usd_total", consumer="team-a"
    )
    assert cost == pytest.approx(expected_cost)
    assert (
        value(after, "sluicegate_request_duration_seconds_count", rule="chat")
        - value(before, "sluicegate_request_duration_seconds_count", rule="chat")
        == 1
    )
    assert (
        value(after, "sluicegate_overhead_seconds_count")
        - value(before, "sluicegate_overhead_seconds_count")
        == 1
    )


def test_streams_count_tokens_and_time_to_first_token(gateway: RunningGateway) -> None:
    before = samples(gateway)
    response = chat(gateway, "gpt-4o-mini", stream=True)
    assert response.status_code == 200
    wait_finished(gateway.url, 1)  # counted just after the client has its answer
    after = samples(gateway)
    assert (
        value(after, "gen_ai_server_time_to_first_token_seconds_count", service="openai")
        - value(before, "gen_ai_server_time_to_first_token_seconds_count", service="openai")
        == 1
    )
    assert (
        value(after, "sluicegate_tokens_total", type="output", service="openai")
        - value(before, "sluicegate_tokens_total", type="output", service="openai")
        == 6  # "Hello from the fake: hi there"
    )


def test_errors_retries_and_fallbacks(gateway: RunningGateway) -> None:
    before = samples(gateway)
    assert chat(gateway, "failover").status_code == 200  # 2 attempts on broken, then openai
    assert chat(gateway, "doomed").status_code == 502  # 2 attempts, no fallback
    assert chat(gateway, "nobody-serves-this").status_code == 404
    wait_finished(gateway.url, 3)  # counted just after the client has its answer
    after = samples(gateway)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("sluicegate_retries_total", rule="failover") == 2
    assert delta("sluicegate_fallbacks_total", rule="failover") == 1
    assert delta("sluicegate_retries_total", rule="only-broken") == 1
    assert delta("sluicegate_requests_total", rule="only-broken", status="5xx") == 1
    # An unmatched model is counted without its name: labels stay bounded.
    assert delta("sluicegate_requests_total", rule="", model="", status="4xx") == 1
    assert not any("nobody-serves-this" in str(labels) for _, labels in after)


def test_the_access_log_has_one_line_per_request_and_no_secrets(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sluicegate.access"):
        chat(gateway, "gpt-4o-mini")
        chat(gateway, "nobody-serves-this")
        # A request is logged once its answer is out: the client can be a moment ahead.
        wait_finished(gateway.url, 2)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "sluicegate.access"]
    assert [line["status"] for line in lines] == [200, 404]
    assert (
        lines[0]["service"] == "openai"
        and lines[0]["input_tokens"] > 0
        and lines[0]["cost_usd"] > 0
    )
    assert lines[1]["error_type"] == "not_found_error"
    assert KEY not in caplog.text
