"""Several gateways (tenants) in one process: selection by Host or /gw/<name>/, isolation
of models and keys, and gateways made through the Admin API on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

ADMIN_KEY = "adm-tenant-key-0001"
KEY_A = "sk-tenant-default-0001"
KEY_B = "sk-tenant-team-b-0002"
KEY_C = "sk-tenant-team-c-0003"


def _mock_gateway(model: str) -> dict[str, Any]:
    return {
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": [model]}, "targets": [{"service": "mock"}]}],
    }


def config(store: str | None = None) -> dict[str, Any]:
    gateway: dict[str, Any] = {"admin_key": ADMIN_KEY}
    if store is not None:
        gateway["store"] = store
    return {
        "gateway": gateway,
        **_mock_gateway("alpha"),
        "consumers": [{"name": "team-a", "keys": [KEY_A]}],
        "gateways": [
            {
                "name": "team-b",
                "hosts": ["team-b.gw.example.com", "*.b.example.com"],
                **_mock_gateway("beta"),
                "consumers": [{"name": "team-b", "keys": [KEY_B]}],
            }
        ],
    }


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    running = RunningGateway(config()).start()
    try:
        yield running
    finally:
        running.stop()


def _models(url: str, key: str, host: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if host is not None:
        headers["Host"] = host
    return httpx.get(url, headers=headers, timeout=10)


def test_each_gateway_sees_only_its_own_models(gateway: RunningGateway) -> None:
    default = _models(f"{gateway.url}/v1/models", KEY_A)
    assert [m["id"] for m in default.json()["data"]] == ["alpha"]
    for url, host in (
        (f"{gateway.url}/v1/models", "team-b.gw.example.com"),
        (f"{gateway.url}/v1/models", "TEAM-B.gw.example.com:8080"),
        (f"{gateway.url}/v1/models", "x.b.example.com"),
        (f"{gateway.url}/gw/team-b/v1/models", None),
    ):
        answer = _models(url, KEY_B, host)
        assert answer.status_code == 200, (url, host, answer.text)
        assert [m["id"] for m in answer.json()["data"]] == ["beta"]
    # A host no gateway claims is the default gateway's.
    assert _models(f"{gateway.url}/v1/models", KEY_A, "other.example.com").status_code == 200


def test_keys_of_one_gateway_are_refused_by_the_other(gateway: RunningGateway) -> None:
    assert _models(f"{gateway.url}/v1/models", KEY_B).status_code == 401
    assert _models(f"{gateway.url}/gw/team-b/v1/models", KEY_A).status_code == 401
    assert _models(f"{gateway.url}/v1/models", KEY_A, "team-b.gw.example.com").status_code == 401


def test_sdk_through_a_path_prefix_and_models_stay_apart(gateway: RunningGateway) -> None:
    team_b = openai.OpenAI(api_key=KEY_B, base_url=f"{gateway.url}/gw/team-b/v1", max_retries=0)
    answer = team_b.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": "hello tenant"}]
    )
    assert answer.choices[0].message.content == "mock: hello tenant"
    chunks = team_b.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": "two words"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mock: two words"
    with pytest.raises(openai.NotFoundError):
        team_b.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "x"}])
    default = openai.OpenAI(api_key=KEY_A, base_url=f"{gateway.url}/v1", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        default.chat.completions.create(model="beta", messages=[{"role": "user", "content": "x"}])


def test_unknown_gateway_in_the_path(gateway: RunningGateway) -> None:
    answer = _models(f"{gateway.url}/gw/nope/v1/models", KEY_A)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "gateway_not_found"


def test_metrics_and_audit_name_the_gateway(gateway: RunningGateway) -> None:
    client = openai.OpenAI(api_key=KEY_B, base_url=f"{gateway.url}/gw/team-b/v1", max_retries=0)
    client.chat.completions.create(model="beta", messages=[{"role": "user", "content": "m"}])
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway="team-b"' in metrics


def test_invalid_tenants_are_reported_with_paths() -> None:
    from sluicegate.config.load import parse_config
    from sluicegate.errors import ConfigError

    bad = config()
    rule = {"name": "r", "match": {"models": ["x"]}, "targets": [{"service": "mock"}]}
    bad["gateways"] += [
        {"name": "team-b"},
        {"name": "team-z", "hosts": ["team-b.gw.example.com", "not a host"], "rules": [rule]},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, env={})
    issues = "\n".join(caught.value.issues)
    assert "gateways[1].name: duplicate gateway name 'team-b'" in issues
    assert (
        "gateways[2].hosts[0]: 'team-b.gw.example.com' already selects gateway 'team-b'" in issues
    )
    # A tenant's entities see only each other: the default gateway's service is not there.
    assert "gateways[2].rules[0].targets[0].service: unknown service 'mock'" in issues
    assert "gateways[2].hosts[1]" in issues


# -- gateways through the Admin API ------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningGateway]:
    with store_url(request.param, tmp_path) as url:
        running = RunningGateway(config(url)).start()
        try:
            yield running
        finally:
            running.stop()


def test_gateway_made_through_the_admin_api_routes_at_once(stored: RunningGateway) -> None:
    admin = httpx.Client(
        base_url=stored.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20
    )
    made = admin.post("/admin/gateways", json={"name": "team-c", "hosts": ["c.example.com"]})
    assert made.status_code == 201, made.text
    assert made.json()["source"] == "store" and made.json()["hosts"] == ["c.example.com"]
    names = [g["name"] for g in admin.get("/admin/gateways").json()["data"]]
    assert names == ["default", "team-b", "team-c"]
    # The same names in two gateways do not collide.
    assert (
        admin.post(
            "/admin/gateways/team-c/services", json={"name": "mock", "provider": "mock"}
        ).status_code
        == 201
    )
    rule = {"name": "chat", "match": {"models": ["gamma"]}, "targets": [{"service": "mock"}]}
    assert admin.post("/admin/gateways/team-c/rules", json=rule).status_code == 201
    consumer = {"name": "team-c", "keys": [KEY_C]}
    assert admin.post("/admin/gateways/team-c/consumers", json=consumer).status_code == 201
    listed = admin.get("/admin/gateways/team-c/services").json()["data"]
    assert [s["name"] for s in listed] == ["mock"]
    assert [s["name"] for s in admin.get("/admin/services").json()["data"]] == ["mock"]
    assert listed[0]["id"] != admin.get("/admin/services/mock").json()["id"]

    answer = _models(f"{stored.url}/v1/models", KEY_C, "c.example.com")
    assert [m["id"] for m in answer.json()["data"]] == ["gamma"]
    client = openai.OpenAI(api_key=KEY_C, base_url=f"{stored.url}/gw/team-c/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="gamma", messages=[{"role": "user", "content": "c"}]
    )
    assert reply.choices[0].message.content == "mock: c"
    assert _models(f"{stored.url}/v1/models", KEY_C).status_code == 401  # not the default's key

    # Conflicts: a taken host, a taken name, a gateway of the file, a gateway still in use.
    taken = admin.post(
        "/admin/gateways", json={"name": "team-d", "hosts": ["team-b.gw.example.com"]}
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "host_taken"
    again = admin.post("/admin/gateways", json={"name": "team-b"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "name_taken"
    file_one = admin.put("/admin/gateways/team-b", json={"hosts": []})
    assert file_one.status_code == 409 and file_one.json()["error"]["code"] == "read_only"
    bad = admin.post("/admin/gateways", json={"name": "team-e", "hosts": ["no spaces"]})
    assert bad.status_code == 422 and bad.json()["error"]["issues"][0]["path"] == "hosts[0]"
    busy = admin.delete("/admin/gateways/team-c")
    assert busy.status_code == 409 and "services/mock" in busy.json()["error"]["message"]

    # PATCH keeps what it does not name and moves the host; the ETag guards it.
    current = admin.get("/admin/gateways/team-c")
    stale = admin.patch(
        "/admin/gateways/team-c", json={"hosts": ["c2.example.com"]}, headers={"If-Match": '"v0-x"'}
    )
    assert stale.status_code == 412
    moved = admin.patch(
        "/admin/gateways/team-c",
        json={"hosts": ["c2.example.com"], "description": "team C"},
        headers={"If-Match": current.headers["etag"]},
    )
    assert moved.status_code == 200 and moved.json()["description"] == "team C"
    assert _models(f"{stored.url}/v1/models", KEY_C, "c2.example.com").status_code == 200
    assert _models(f"{stored.url}/v1/models", KEY_C, "c.example.com").status_code == 401

    for kind, name in (("consumers", "team-c"), ("rules", "chat"), ("services", "mock")):
        assert admin.delete(f"/admin/gateways/team-c/{kind}/{name}").status_code == 204
    assert admin.delete("/admin/gateways/team-c").status_code == 204
    gone = _models(f"{stored.url}/gw/team-c/v1/models", KEY_C)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "gateway_not_found"
    assert admin.get("/admin/gateways/team-c").status_code == 404
    assert admin.get("/admin/gateways/team-c/services").status_code == 404


def test_a_second_instance_sees_a_new_gateway(stored: RunningGateway, tmp_path: Path) -> None:
    url = stored.runtime.file.config.gateway.store
    assert url is not None
    other = RunningGateway(config(url), poll_interval=0.2).start()
    try:
        admin = httpx.Client(
            base_url=stored.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20
        )
        made = admin.post("/admin/gateways", json={"name": "team-x", "auth": "none"})
        assert made.status_code == 201  # no consumers: it serves without a key
        service = {"name": "mock", "provider": "mock"}
        assert admin.post("/admin/gateways/team-x/services", json=service).status_code == 201
        rule = {"name": "chat", "match": {"models": ["xray"]}, "targets": [{"service": "mock"}]}
        assert admin.post("/admin/gateways/team-x/rules", json=rule).status_code == 201
        import time

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            answer = httpx.get(f"{other.url}/gw/team-x/v1/models", timeout=5)
            if answer.status_code == 200 and answer.json()["data"]:
                break
            time.sleep(0.05)
        assert [m["id"] for m in answer.json()["data"]] == ["xray"]
    finally:
        other.stop()
