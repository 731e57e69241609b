"""Minted keys (Admin API and CLI) and consumer groups, on SQLite and PostgreSQL:
every key path, revocation seen by a second instance, rotation with a grace period."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from sluicegate.cli import main
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

ADMIN_KEY = "adm-keys-test-0001"
FILE_KEY = "sk-file-key-00000001"


def config(store: str) -> dict[str, Any]:
    rule = {
        "name": "chat",
        "match": {"models": ["chat-a", "chat-b"]},
        "targets": [{"service": "m"}],
    }
    other = {"name": "other", "match": {"models": ["other"]}, "targets": [{"service": "m"}]}
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "services": [{"name": "m", "provider": "mock"}],
        "rules": [rule, other],
        "consumers": [{"name": "team-a", "keys": [FILE_KEY]}],
    }


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def gateway(url: str) -> Iterator[RunningGateway]:
    running = RunningGateway(config(url), poll_interval=0.2).start()
    try:
        yield running
    finally:
        running.stop()


def admin(gateway: RunningGateway) -> httpx.Client:
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=20
    )


def chat(gateway: RunningGateway, key: str, model: str = "chat-a") -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )


def test_minted_key_is_shown_once_and_routes(gateway: RunningGateway) -> None:
    api = admin(gateway)
    made = api.post("/admin/consumers/team-a/keys", json={"name": "ci-bot"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith("sg-") and len(key) > 40 and made.json()["prefix"] == key[:11]
    assert made.json()["status"] == "active" and made.json()["consumer"] == "team-a"
    client = openai.OpenAI(api_key=key, base_url=f"{gateway.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="chat-a", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "mock: x"
    listed = api.get("/admin/consumers/team-a/keys").json()["data"]
    assert [k["prefix"] for k in listed] == [key[:11]]
    for answer in (listed[0], api.get(f"/admin/keys/{listed[0]['id']}").json()):
        assert "key" not in answer and "hash" not in answer
    stored = [r for r in gateway.runtime.tables["default"].keys.values() if r.key_id]
    assert stored and stored[0].prefix == key[:11]
    # last_used_at arrives with the next batch, not with the request.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        shown = api.get(f"/admin/keys/{key[:11]}").json()
        if shown["last_used_at"] is not None:
            break
        time.sleep(0.2)
    assert shown["last_used_at"] is not None
    # The audit row names the key by its prefix.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = api.get("/admin/logs", params={"key_prefix": key[:11]}).json()["data"]
        if rows:
            break
        time.sleep(0.2)
    assert rows and rows[0]["consumer"] == "team-a"


def test_unknown_expired_restricted_and_limited_keys(gateway: RunningGateway) -> None:
    api = admin(gateway)
    assert chat(gateway, "sg-not-a-key-at-all-000000").status_code == 401
    short = api.post("/admin/consumers/team-a/keys", json={"expires_in": "1s"}).json()["key"]
    assert chat(gateway, short).status_code == 200
    time.sleep(1.2)
    expired = chat(gateway, short)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "key_expired"
    assert api.get(f"/admin/keys/{short[:11]}").json()["status"] == "expired"

    narrow = api.post(
        "/admin/consumers/team-a/keys", json={"rules": ["chat"], "models": ["chat-a"]}
    ).json()["key"]
    assert chat(gateway, narrow).status_code == 200
    assert chat(gateway, narrow, "other").status_code == 403
    denied = chat(gateway, narrow, "chat-b")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    models = httpx.get(
        f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {narrow}"}
    ).json()
    assert [m["id"] for m in models["data"]] == ["chat-a"]
    assert chat(gateway, FILE_KEY, "other").status_code == 200  # the consumer itself may

    limited = api.post(
        "/admin/consumers/team-a/keys", json={"limits": [{"requests": 2, "window": "1m"}]}
    ).json()["key"]
    assert [chat(gateway, limited).status_code for _ in range(3)] == [200, 200, 429]
    assert chat(gateway, FILE_KEY).status_code == 200  # the key's limit narrows only the key

    bad = api.post("/admin/consumers/team-a/keys", json={"rules": ["nope"]})
    assert bad.status_code == 422
    assert api.post("/admin/consumers/nobody/keys", json={}).status_code == 404


def test_revocation_reaches_another_instance_within_a_second(
    gateway: RunningGateway, url: str
) -> None:
    other = RunningGateway(config(url), poll_interval=0.2).start()
    try:
        api = admin(gateway)
        made = api.post("/admin/consumers/team-a/keys", json={}).json()
        key = made["key"]
        deadline = time.monotonic() + 3
        while chat(other, key).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert chat(other, key).status_code == 200
        assert api.delete(f"/admin/keys/{made['id']}").status_code == 204
        assert chat(gateway, key).status_code == 401
        revoked_at = time.monotonic()
        while chat(other, key).status_code != 401:
            assert time.monotonic() - revoked_at < 1.0, "the other instance still takes the key"
            time.sleep(0.02)
        assert api.get(f"/admin/keys/{made['id']}").json()["status"] == "revoked"
    finally:
        other.stop()


def test_a_revoked_key_is_told_it_was_revoked(gateway: RunningGateway) -> None:
    api = admin(gateway)
    made = api.post("/admin/consumers/team-a/keys", json={"name": "to-revoke"}).json()
    assert chat(gateway, made["key"]).status_code == 200
    assert api.delete(f"/admin/keys/{made['id']}").status_code == 204
    refused = chat(gateway, made["key"])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "key_revoked"
    assert "revoked" in refused.json()["error"]["message"]
    wrong = chat(gateway, made["key"][:-4] + "zzzz")  # a key never minted stays anonymous
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_rotation_keeps_the_old_key_for_its_grace(gateway: RunningGateway) -> None:
    api = admin(gateway)
    old = api.post("/admin/consumers/team-a/keys", json={"rules": ["chat"]}).json()
    new = api.post(f"/admin/keys/{old['prefix']}/rotate", json={"grace": "1s"})
    assert new.status_code == 201, new.text
    assert new.json()["rotated_from"] == old["id"] and new.json()["rules"] == ["chat"]
    assert chat(gateway, new.json()["key"]).status_code == 200
    assert chat(gateway, old["key"]).status_code == 200  # within the grace period
    assert chat(gateway, new.json()["key"], "other").status_code == 403  # restrictions carried
    time.sleep(1.2)
    assert chat(gateway, old["key"]).status_code == 401
    assert chat(gateway, new.json()["key"]).status_code == 200


def test_deleting_a_consumer_takes_its_keys(gateway: RunningGateway) -> None:
    api = admin(gateway)
    assert api.post("/admin/consumers", json={"name": "temp"}).status_code == 201
    key = api.post("/admin/consumers/temp/keys", json={}).json()["key"]
    assert chat(gateway, key).status_code == 200
    renamed = api.patch("/admin/consumers/temp", json={"name": "temp2"})
    assert renamed.status_code == 409
    assert api.delete("/admin/consumers/temp").status_code == 204
    assert api.post("/admin/consumers", json={"name": "temp"}).status_code == 201
    assert chat(gateway, key).status_code == 401  # not brought back by the same name
    assert api.get("/admin/keys").json()["data"] == []


def test_cli_keys(gateway: RunningGateway, capsys: pytest.CaptureFixture[str]) -> None:
    conn = ["--url", gateway.url, "--admin-key", ADMIN_KEY]
    assert (
        main(
            [
                "keys",
                "create",
                *conn,
                "--consumer",
                "team-a",
                "--name",
                "ci-bot",
                "--expires",
                "30d",
                "--rules",
                "chat",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("sg-") and "shown this once" in err
    assert chat(gateway, key).status_code == 200 and chat(gateway, key, "other").status_code == 403
    assert main(["keys", "list", *conn, "--consumer", "team-a"]) == 0
    out, _ = capsys.readouterr()
    assert key[:11] in out and "ci-bot" in out and key not in out
    assert main(["keys", "rotate", *conn, key[:11], "--grace", "0s"]) == 0
    out, _ = capsys.readouterr()
    successor = out.strip()
    assert chat(gateway, successor).status_code == 200
    assert main(["keys", "revoke", *conn, successor[:11]]) == 0
    capsys.readouterr()
    assert chat(gateway, successor).status_code == 401
    assert main(["keys", "revoke", *conn, "sg-missing"]) == 1
    assert "key_not_found" in capsys.readouterr().err


def test_groups_narrow_rules_and_share_limits(tmp_path: Path) -> None:
    doc = config(f"sqlite:///{tmp_path / 'g.db'}")
    doc["groups"] = [{"name": "eng", "rules": ["chat"], "limits": {"requests": 3, "window": "1m"}}]
    doc["consumers"] = [
        {"name": "ann", "keys": ["sk-ann-000000001"], "groups": ["eng"]},
        {
            "name": "bob",
            "keys": ["sk-bob-000000001"],
            "groups": ["eng"],
            "rules": ["chat", "other"],
        },
    ]
    running = RunningGateway(doc).start()
    try:
        assert chat(running, "sk-bob-000000001", "other").status_code == 403  # the group narrows
        statuses = [
            chat(running, key).status_code
            for key in (
                "sk-ann-000000001",
                "sk-bob-000000001",
                "sk-ann-000000001",
                "sk-bob-000000001",
            )
        ]
        assert statuses == [200, 200, 200, 429]  # one allowance for the whole group
        groups = admin(running).get("/admin/groups").json()["data"]
        assert groups[0]["name"] == "eng" and groups[0]["source"] == "file"
    finally:
        running.stop()
