"""A gateway without consumers refuses every request (401) unless its config says
``auth: none``, which is logged at WARNING when it takes effect and shown by the dashboard.
Gateways are built both from the file and through the Admin API, in the documented order
(gateway, service, rule, then consumers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-fail-closed-0001"
KEY = "sk-fail-closed-team-0001"
OFF = "authentication off"


def _chat(url: str, key: str | None = None, model: str = "chat") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=20)


def _routes(**extra: Any) -> dict[str, Any]:
    return {
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [
            {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "mock"}]}
        ],
        **extra,
    }


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[RunningGateway]:
    doc = {"gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{tmp_path / 's.db'}"}}
    running = RunningGateway(doc, keyless=False).start()
    try:
        yield running
    finally:
        running.stop()


def _admin(gateway: RunningGateway) -> httpx.Client:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.Client(base_url=gateway.url, headers=auth, timeout=20)


def test_a_file_gateway_without_consumers_refuses_requests() -> None:
    running = RunningGateway(_routes(), keyless=False).start()
    try:
        for key in (None, "sk-anything-at-all-01"):
            answer = _chat(running.url, key)
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["type"] == "authentication_error"
        assert httpx.get(f"{running.url}/v1/models", timeout=10).status_code == 401
        assert any("refuses every request (401)" in w for w in running.runtime.table.warnings)
    finally:
        running.stop()


def test_an_admin_api_gateway_stays_closed_before_and_after_its_consumers(
    stored: RunningGateway,
) -> None:
    api = _admin(stored)
    assert api.post("/admin/gateways", json={"name": "team-x"}).status_code == 201
    base = "/admin/gateways/team-x"
    assert (
        api.post(f"{base}/services", json={"name": "mock", "provider": "mock"}).status_code == 201
    )
    rule = {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "mock"}]}
    assert api.post(f"{base}/rules", json=rule).status_code == 201
    url = f"{stored.url}/gw/team-x"
    assert _chat(url).status_code == 401  # no consumer yet: nobody gets in
    assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401

    consumer = {"name": "team", "keys": [KEY]}
    assert api.post(f"{base}/consumers", json=consumer).status_code == 201
    assert _chat(url, KEY).status_code == 200
    assert _chat(url).status_code == 401

    assert api.delete(f"{base}/consumers/team").status_code == 204
    assert _chat(url).status_code == 401  # the last consumer gone: still closed
    assert _chat(url, KEY).status_code == 401
    assert _chat(stored.url).status_code == 401  # the default gateway has no consumers either


def test_auth_none_through_the_admin_api_opens_a_gateway_loudly(
    stored: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sluicegate")
    api = _admin(stored)
    made = api.post("/admin/gateways", json={"name": "lab", "auth": "none"})
    assert made.status_code == 201, made.text
    assert made.json()["auth"] == "none"
    assert api.get("/admin/gateways/lab").json()["auth"] == "none"
    base = "/admin/gateways/lab"
    assert (
        api.post(f"{base}/services", json={"name": "mock", "provider": "mock"}).status_code == 201
    )
    rule = {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "mock"}]}
    assert api.post(f"{base}/rules", json=rule).status_code == 201
    url = f"{stored.url}/gw/lab"
    assert _chat(url).status_code == 200
    assert any(OFF in w and "'lab'" in w for w in _warnings(caplog))

    # With a consumer, keys are asked as everywhere; without one again, it is open again,
    # and the swap that opens it says so again.
    assert api.post(f"{base}/consumers", json={"name": "team", "keys": [KEY]}).status_code == 201
    assert _chat(url).status_code == 401 and _chat(url, KEY).status_code == 200
    caplog.clear()
    assert api.delete(f"{base}/consumers/team").status_code == 204
    assert _chat(url).status_code == 200
    assert any(OFF in w and "'lab'" in w for w in _warnings(caplog))

    # Switched back: closed at once.
    closed = api.patch(base, json={"auth": None})
    assert closed.status_code == 200, closed.text
    assert _chat(url).status_code == 401


def test_auth_none_in_the_file_is_logged_and_shown_by_the_dashboard(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sluicegate")
    doc = _routes(gateway={"admin_key": ADMIN_KEY}, auth="none")
    doc["gateways"] = [{"name": "closed", **_routes()}]
    running = RunningGateway(doc, keyless=False).start()
    try:
        assert _chat(running.url).status_code == 200
        assert _chat(f"{running.url}/gw/closed").status_code == 401  # the setting is per gateway
        shown = [w for w in _warnings(caplog) if OFF in w]
        assert any("'default'" in w for w in shown) and not any("'closed'" in w for w in shown)

        ui = httpx.Client(base_url=running.url, timeout=10)
        assert ui.post("/ui/api/login", json={"key": ADMIN_KEY}).status_code == 200
        summary = ui.get("/ui/api/summary", params={"gateway": "default"}).json()
        assert summary["authentication"] == "off"
        other = ui.get("/ui/api/summary", params={"gateway": "closed"}).json()
        assert other["authentication"] == "keys"
        page = ui.get("/ui/static/js/pages/overview.js").text
        assert "Authentication off" in page
    finally:
        running.stop()


def test_auth_none_is_a_word_of_its_own() -> None:
    from sluicegate.config.load import parse_config
    from sluicegate.errors import ConfigError

    config = parse_config(_routes(auth="none"), env={}).config
    assert config.auth.anonymous and config.model_dump(mode="json")["auth"] == "none"
    for wrong in ("None!", "off", {"jwt": {"secret": "x" * 32}, "anonymous": True}):
        with pytest.raises(ConfigError) as caught:
            parse_config(_routes(auth=wrong), env={})
        assert any(issue.startswith("auth") for issue in caught.value.issues), wrong
