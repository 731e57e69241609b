"""The overview's figures: windows as differences of metric readings, percentiles from
the latency histogram, top lists per consumer and model."""

from __future__ import annotations

import asyncio
import math

import pytest

from sluicegate.telemetry.metrics import Metrics
from sluicegate.ui.ended import EndedSessions
from sluicegate.ui.session import Sessions
from sluicegate.ui.summary import Sampler, quantile


def _answer(metrics: Metrics, consumer: str, status: str, seconds: float) -> None:
    labels = ("default", "chat", "demo", "mock", "demo-model", consumer)
    metrics.requests.labels(*labels, "chat", status).inc()
    metrics.attempts.labels("default", "demo", "mock://demo", status).inc()
    metrics.duration.labels("default", "chat", "demo").observe(seconds)
    metrics.tokens.labels("default", "demo", "mock", "demo-model", consumer, "input").inc(10)
    metrics.tokens.labels("default", "demo", "mock", "demo-model", consumer, "output").inc(5)
    metrics.tokens.labels("default", "demo", "mock", "demo-model", consumer, "cached").inc(7)
    metrics.cost.labels("default", "mock", "demo-model", consumer).inc(0.25)


def test_a_window_counts_what_happened_after_its_baseline() -> None:
    metrics = Metrics(list)
    _answer(metrics, "early", "2xx", 0.02)  # before the sampler: not in any window
    sampler = Sampler(metrics)
    sampler.sample()
    for _ in range(3):
        _answer(metrics, "team-a", "2xx", 0.02)
    _answer(metrics, "team-b", "5xx", 3.0)
    summary = sampler.summary("default", "1h")
    totals = summary["totals"]
    assert totals["requests"] == 4 and totals["errors"] == 1 and totals["error_rate"] == 0.25
    assert totals["input_tokens"] == 40 and totals["output_tokens"] == 20  # cached: not added
    assert totals["cost_usd"] == pytest.approx(1.0)
    assert 10 <= totals["p50_ms"] <= 25 and 2500 <= totals["p99_ms"] <= 5000
    top = {row["name"]: row for row in summary["top_consumers"]}
    assert set(top) == {"team-a", "team-b"}
    assert top["team-a"]["requests"] == 3 and top["team-a"]["tokens"] == 45
    assert summary["top_consumers"][0]["name"] == "team-a"  # the largest cost first
    assert summary["top_models"] == [
        {
            "name": "demo-model",
            "requests": 4.0,
            "errors": 1.0,
            "error_rate": 0.25,
            "tokens": 60.0,
            "cost_usd": 1.0,
        }
    ]
    assert summary["services"][0]["name"] == "demo"
    assert len(summary["points"]) == 1 and summary["points"][0]["requests"] == 4
    # Another gateway's window is empty, not an error.
    assert sampler.summary("elsewhere", "1d")["totals"]["requests"] == 0


def test_quantile_interpolates_inside_a_bucket_like_promql() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {0.1: 0.0, math.inf: 4.0}) == 0.1  # beyond the last bound


def test_a_session_cookie_is_signed_and_bound_to_its_key() -> None:
    sessions = Sessions()
    key = sessions.signing_key("admin-key-1", b"")
    cookie, session = sessions.issue(key)
    assert sessions.check(key, cookie) == session
    assert sessions.csrf_ok(session, session.csrf)
    assert not sessions.csrf_ok(session, session.csrf[:-1] + "x")
    assert not sessions.csrf_ok(session, None)
    # Another admin key (a rotation) ends it; so do tampering and expiry.
    assert sessions.check(sessions.signing_key("admin-key-2", b""), cookie) is None
    body, _, mac = cookie.rpartition(".")
    later = body.replace(body.split(".")[1], str(int(body.split(".")[1]) + 3600))
    assert sessions.check(key, f"{later}.{mac}") is None
    expired, _ = sessions.issue(key, lifetime=-1)
    assert sessions.check(key, expired) is None
    # A logout is EndedSessions' to keep (in process here: no store, no Redis).
    ended = EndedSessions(None)
    assert not asyncio.run(ended.ended(session.nonce, session.expires))
    asyncio.run(ended.end(session.nonce, session.expires))
    assert asyncio.run(ended.ended(session.nonce, session.expires))
    # Without an admin key: the key secret, else a per-process random key.
    assert sessions.signing_key(None, b"secret") != sessions.signing_key(None, b"")


def test_a_services_requests_and_errors_are_its_attempts() -> None:
    """A primary that failed every attempt behind a fallback answered no request, yet the
    Services page shows its attempts and their error rate."""
    metrics = Metrics(list)
    sampler = Sampler(metrics)
    sampler.sample()
    for _ in range(3):
        metrics.requests.labels(
            "default", "chat", "backup", "openai", "m", "team", "chat", "2xx"
        ).inc()
        metrics.attempts.labels("default", "primary", "http://a/v1", "5xx").inc(2)
        metrics.attempts.labels("default", "backup", "http://b/v1", "2xx").inc()
    metrics.attempts.labels("default", "primary", "", "unavailable").inc()
    services = {row["name"]: row for row in sampler.summary("default", "1h")["services"]}
    assert services["primary"]["requests"] == 7 and services["primary"]["errors"] == 7
    assert services["primary"]["error_rate"] == 1.0
    assert services["backup"]["requests"] == 3 and services["backup"]["error_rate"] == 0.0
