"""Clients cannot grow ``/metrics``: every label value comes from the config or a small fixed
set, whatever model strings or token subjects they send (docs/observability.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_finished
from tests.fakes.gateway import RunningGateway

KEY = "sk-metrics-labels-0001"
SECRET = "hs256-secret-of-the-metrics-label-tests"
RULES = [
    # A glob that sends the client's own string on: no label may hold it.
    {"name": "anything", "match": {"models": ["free-*"]}, "targets": [{"service": "demo"}]},
    # A glob that rewrites the model: the label is the target's model.
    {
        "name": "gpt",
        "match": {"models": ["gpt-*"]},
        "targets": [{"service": "demo", "model": "small-model"}],
    },
    {"name": "literal", "match": {"models": ["named-model"]}, "targets": [{"service": "demo"}]},
]


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    config = {
        "gateway": {"name": f"labels{uuid.uuid4().hex[:6]}"},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": RULES,
        "consumers": [
            {"name": "team-a", "keys": [KEY]},
            {"name": "employees", "limits": {"requests": 100000, "window": "1m"}},
        ],
        "auth": {"jwt": {"secret": SECRET, "default_consumer": "employees"}},
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def _scrape(gateway: RunningGateway) -> str:
    return httpx.get(gateway.url + "/metrics", timeout=10).text


def _label_values(text: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if label in sample.labels
    }


def _send(
    gateway: RunningGateway, bodies: list[dict[str, Any]], tokens: list[str] | None = None
) -> None:
    """Each body once, from a few clients at a time; every answer must be a 200."""
    auth = tokens or [KEY] * len(bodies)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:

        def one(pair: tuple[dict[str, Any], str]) -> int:
            body, key = pair
            headers = {"Authorization": f"Bearer {key}"}
            return client.post("/v1/chat/completions", json=body, headers=headers).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(one, zip(bodies, auth, strict=True)))
    assert set(statuses) == {200}


def _chat(model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def test_distinct_model_strings_under_a_glob_leave_metrics_bounded(
    gateway: RunningGateway,
) -> None:
    def batch(start: int, count: int) -> list[dict[str, Any]]:
        return [
            _chat(f"{('free', 'gpt')[i % 2]}-client-{i:05d}", stream=i % 3 == 0)
            for i in range(start, start + count)
        ]

    warm = batch(0, 40)
    _send(gateway, [*warm, _chat("named-model"), _chat("named-model", True)])
    wait_finished(gateway.url, 42)
    before = _scrape(gateway)
    _send(gateway, batch(40, 2000))
    wait_finished(gateway.url, 2042, seconds=60)
    after = _scrape(gateway)
    # Counter values grow by a digit or two; no series may be added.
    assert len(after) - len(before) < 2048, (len(before), len(after))
    assert "client-" not in after
    assert _label_values(after, "model") <= {"other", "small-model", "named-model", ""}
    assert {"other", "small-model", "named-model"} <= _label_values(after, "model")


def test_token_subjects_are_counted_under_their_configured_consumer(
    gateway: RunningGateway,
) -> None:
    def token(subject: str) -> str:
        claims = {"sub": subject, "exp": int(time.time()) + 300}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    subjects = [f"subject-{uuid.uuid4().hex}" for _ in range(300)]
    done = round(
        sum(
            s.value
            for f in text_string_to_metric_families(_scrape(gateway))
            for s in f.samples
            if s.name == "sluicegate_requests_total"
        )
    )
    _send(gateway, [_chat("named-model") for _ in subjects], [token(s) for s in subjects])
    wait_finished(gateway.url, done + len(subjects))
    text = _scrape(gateway)
    assert "subject-" not in text
    assert _label_values(text, "consumer") <= {"team-a", "employees", ""}
    assert "employees" in _label_values(text, "consumer")
