"""Every upstream attempt is counted: a metric per service, target and outcome, the
attempts of a request in its audit row, the dashboard's Services page from attempts,
and passive health for endpoint services (a single target ejected after failures in a
row, readmitted by a half-open trial)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource

from tests.conftest import KEY, eventually, logged_row, openai_service, wait_finished
from tests.fakes.faulty_server import FaultyUpstream
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.stores import store_url

Start = Callable[[dict[str, Any]], RunningGateway]
ADMIN_KEY = "adm-attempts-key-0001"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def backup() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream("backup").start()
    yield server
    server.stop()


@pytest.fixture
def failing() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream("primary").start()
    server.mode = "500"
    yield server
    if server._thread is not None:
        server.stop()


def config(store: str, tmp_path: Path, primary: dict[str, Any], backup_port: int) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "audit": {"spill_path": str(tmp_path / "spill.jsonl"), "flush_interval": "20ms"},
        "services": [primary, openai_service("backup", backup_port, retries=0)],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": [{"service": "primary"}],
                "fallbacks": [{"service": "backup"}],
            }
        ],
        "consumers": [{"name": "team", "keys": [KEY]}],
    }


def ask(gateway: RunningGateway, model: str = "chat") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=20)


def samples(gateway: RunningGateway, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def attempts_metric(gateway: RunningGateway) -> dict[tuple[str, str, str], float]:
    """(service, target, outcome) → attempts counted."""
    return {
        (labels["service"], labels["target"], labels["outcome"]): value
        for labels, value in samples(gateway, "sluicegate_upstream_attempts_total")
    }


def healthy_metric(gateway: RunningGateway, service: str) -> list[tuple[str, str, float]]:
    return [
        (labels["target"], labels["state"], value)
        for labels, value in samples(gateway, "sluicegate_upstream_healthy")
        if labels["service"] == service
    ]


def health_of(admin: httpx.Client, service: str) -> dict[str, Any]:
    report = admin.get("/admin/health")
    assert report.status_code == 200, report.text
    rows = [row for row in report.json()["data"] if row.get("service") == service]
    assert len(rows) == 1, report.json()
    row: dict[str, Any] = rows[0]
    return row


def services_summary(gateway: RunningGateway) -> dict[str, dict[str, Any]]:
    """The rows the dashboard's Services page reads, by service name."""
    with httpx.Client(base_url=gateway.url) as session:
        assert session.post("/ui/api/login", json={"key": ADMIN_KEY}).status_code == 200
        summary = session.get("/ui/api/summary", params={"window": "1h"})
        assert summary.status_code == 200, summary.text
        return {row["name"]: row for row in summary.json()["services"]}


def conforms(admin: httpx.Client, pointer: str, value: Any) -> None:
    """``value`` is valid against the Admin API's OpenAPI spec at ``pointer``."""
    spec = admin.get("/admin/openapi.json").json()
    meta = jsonschema.Draft202012Validator.META_SCHEMA["$id"]
    registry: Registry[Any] = Registry().with_resource(
        "urn:spec", Resource.from_contents({**spec, "$schema": meta})
    )
    schema = {"$ref": f"urn:spec#{pointer}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(value)


def shape(detail: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """An audit row's attempts without their durations (checked apart)."""
    return [(a["service"], a["target"], a["status"], a["outcome"]) for a in detail]


@pytest.mark.parametrize(
    ("fault", "backend"),
    [("500", "sqlite"), ("closed port", "postgres")],
)
def test_a_failing_primary_behind_a_fallback_is_counted_attempt_by_attempt(
    fault: str,
    backend: str,
    backup: FaultyUpstream,
    failing: FaultyUpstream,
    tmp_path: Path,
) -> None:
    port = failing.port
    if fault == "closed port":
        failing.stop()
    primary = openai_service("primary", port, retries=1, retry_backoff="1ms")
    target = f"http://127.0.0.1:{port}/v1"
    outcome, status = ("5xx", 500) if fault == "500" else ("connect", None)
    with store_url(backend, tmp_path) as url:
        gateway = RunningGateway(config(url, tmp_path, primary, backup.port)).start()
        admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        try:
            answers = [ask(gateway) for _ in range(2)]
            assert [a.status_code for a in answers] == [200, 200]
            assert {a.headers["x-sluicegate-service"] for a in answers} == {"backup"}
            assert {a.headers["x-sluicegate-attempts"] for a in answers} == {"3"}
            wait_finished(gateway.url, 2)
            backup_target = f"http://127.0.0.1:{backup.port}/v1"
            counted = attempts_metric(gateway)
            assert counted[("primary", target, outcome)] == 4
            assert counted[("backup", backup_target, "2xx")] == 2
            durations = {
                labels["service"]: value
                for labels, value in samples(
                    gateway, "sluicegate_upstream_attempt_duration_seconds_count"
                )
            }
            assert durations == {"primary": 4, "backup": 2}

            # Each request's audit row lists its attempts, and still counts them.
            row = logged_row(admin, answers[0].headers["x-request-id"], seconds=5)
            assert row["attempts"] == 3 and row["service"] == "backup"
            assert shape(row["attempts_detail"]) == [
                ("primary", target, status, outcome),
                ("primary", target, status, outcome),
                ("backup", backup_target, 200, "2xx"),
            ]
            assert all(a["ms"] >= 0 for a in row["attempts_detail"])
            conforms(admin, "/components/schemas/AuditLog", row)
            listed = admin.get("/admin/logs", params={"request_id": row["request_id"]}).json()
            assert listed["data"][0]["attempts_detail"] == row["attempts_detail"]

            # The Services page: the primary failed every attempt, the backup none.
            services = services_summary(gateway)
            assert services["primary"]["requests"] == 4 and services["primary"]["errors"] == 4
            assert services["primary"]["error_rate"] == 1.0
            assert services["backup"]["requests"] == 2 and services["backup"]["error_rate"] == 0

            # Still healthy after 4 failures in a row (an endpoint service's default is 5) ...
            assert health_of(admin, "primary")["state"] == "healthy"
            third = ask(gateway)
            # ... and ejected by the fifth: its retry finds no target and the fallback answers.
            assert third.status_code == 200 and third.headers["x-sluicegate-attempts"] == "2"
            assert health_of(admin, "primary") | {"ejected_for_s": 0} == {
                "service": "primary",
                "upstream": None,
                "target": target,
                "weight": 1.0,
                "state": "ejected",
                "inflight": 0,
                "latency_ewma_ms": 0.0,
                "consecutive_failures": 0,
                "ejected_for_s": 0,
                "active_checks": False,
                "passive_checks": True,
            }
            assert health_of(admin, "primary")["ejected_for_s"] > 5
            health = "/paths/~1admin~1health/get/responses/200/content/application~1json/schema"
            conforms(admin, health, admin.get("/admin/health").json())
            assert healthy_metric(gateway, "primary") == [(target, "ejected", 0.0)]
            fourth = ask(gateway)  # the primary is skipped without a try
            assert fourth.status_code == 200 and fourth.headers["x-sluicegate-attempts"] == "1"
            wait_finished(gateway.url, 4)
            row = logged_row(admin, fourth.headers["x-request-id"], seconds=5)
            assert shape(row["attempts_detail"]) == [
                ("primary", None, None, "unavailable"),
                ("backup", backup_target, 200, "2xx"),
            ]
            assert row["attempts"] == 1  # requests sent upstream
            counted = attempts_metric(gateway)
            assert counted[("primary", target, outcome)] == 5
            assert counted[("primary", "", "unavailable")] == 2
        finally:
            admin.close()
            gateway.stop()


def single(failing: FaultyUpstream, tmp_path: Path, **service: Any) -> dict[str, Any]:
    primary = openai_service("primary", failing.port, retries=0, **service)
    document = config(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, primary, 1)
    document["services"] = [primary]
    document["rules"][0].pop("fallbacks")
    return document


def test_an_endpoint_service_is_ejected_then_readmitted_by_a_half_open_trial(
    start_gateway: Start, failing: FaultyUpstream, tmp_path: Path
) -> None:
    checks = {"passive": {"failures": 2, "cooldown": "3s"}}
    gateway = start_gateway(single(failing, tmp_path, healthchecks=checks))
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    target = f"http://127.0.0.1:{failing.port}/v1"
    assert [ask(gateway).status_code for _ in range(2)] == [502, 502]
    assert health_of(admin, "primary")["state"] == "ejected"
    assert healthy_metric(gateway, "primary") == [(target, "ejected", 0.0)]
    refused = ask(gateway)  # nothing else to try: a 503 at once, the provider is spared
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "no_healthy_upstream" and "'primary'" in error["message"]
    assert len(failing.requests) == 2
    failing.mode = "ok"

    def half_open() -> None:
        assert health_of(admin, "primary")["state"] == "half-open"

    eventually(half_open, seconds=10, step=0.05)
    assert healthy_metric(gateway, "primary") == [(target, "half-open", 1.0)]
    assert ask(gateway).status_code == 200  # the one trial passes
    assert health_of(admin, "primary")["state"] == "healthy"
    assert healthy_metric(gateway, "primary") == [(target, "healthy", 1.0)]
    admin.close()


def test_a_failed_trial_ejects_an_endpoint_service_again(
    start_gateway: Start, failing: FaultyUpstream, tmp_path: Path
) -> None:
    checks = {"passive": {"failures": 1, "cooldown": "2s"}}
    gateway = start_gateway(single(failing, tmp_path, healthchecks=checks))
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert ask(gateway).status_code == 502
    assert health_of(admin, "primary")["state"] == "ejected"

    def half_open() -> None:
        assert health_of(admin, "primary")["state"] == "half-open"

    eventually(half_open, seconds=10, step=0.05)
    assert ask(gateway).status_code == 502  # the trial, failed
    assert health_of(admin, "primary")["state"] == "ejected"
    assert ask(gateway).status_code == 503
    assert len(failing.requests) == 2
    admin.close()


def test_empty_healthchecks_turn_an_endpoint_services_passive_checks_off(
    start_gateway: Start, failing: FaultyUpstream, tmp_path: Path
) -> None:
    gateway = start_gateway(single(failing, tmp_path, healthchecks={}))
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert [ask(gateway).status_code for _ in range(8)] == [502] * 8
    row = health_of(admin, "primary")
    assert row["state"] == "healthy" and row["passive_checks"] is False
    assert len(failing.requests) == 8
    admin.close()


def test_a_closed_port_without_a_fallback_is_ejected_by_the_defaults(
    start_gateway: Start, tmp_path: Path
) -> None:
    closed = free_port()
    primary = openai_service("primary", closed, retries=0)
    document = config(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, primary, 1)
    document["services"] = [primary]
    document["rules"][0].pop("fallbacks")
    gateway = start_gateway(document)
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert [ask(gateway).status_code for _ in range(5)] == [502] * 5
    row = health_of(admin, "primary")
    assert row["state"] == "ejected" and 5 < row["ejected_for_s"] <= 10  # cooldown: 10s
    assert ask(gateway).status_code == 503
    wait_finished(gateway.url, 6)
    counted = attempts_metric(gateway)
    assert counted[("primary", f"http://127.0.0.1:{closed}/v1", "connect")] == 5
    assert counted[("primary", "", "unavailable")] == 1
    admin.close()


def test_three_timeouts_in_a_row_eject_an_endpoint_service_by_default(
    start_gateway: Start, failing: FaultyUpstream, tmp_path: Path
) -> None:
    failing.mode = "hang"
    gateway = start_gateway(single(failing, tmp_path, timeout="1s"))
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert [ask(gateway).status_code for _ in range(3)] == [504] * 3
    assert health_of(admin, "primary")["state"] == "ejected"
    started = time.monotonic()
    assert ask(gateway).status_code == 503
    # Not another wait on a target known to hang: it was not even asked.
    assert time.monotonic() - started < 0.9 and len(failing.requests) == 3
    wait_finished(gateway.url, 4)
    counted = attempts_metric(gateway)
    assert counted[("primary", f"http://127.0.0.1:{failing.port}/v1", "timeout")] == 3
    admin.close()
