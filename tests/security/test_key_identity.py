"""Minted keys belong to their consumer, not to its name: removing the consumer (from the
file, while running or between runs, or from the store) revokes them for good, and a new
consumer of the same name starts without them. A key never shows more rules than its
consumer may use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluicegate.stores.sqlite import SqliteStore
from tests.conftest import eventually
from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-key-identity-0001"
FILE_KEY = "sk-key-identity-keeper-01"


def _doc(store: str, *consumers: str, rules: list[str] | None = None) -> dict[str, Any]:
    chat = {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "m"}]}
    other = {"name": "other", "match": {"models": ["other"]}, "targets": [{"service": "m"}]}
    people: list[dict[str, Any]] = [{"name": "keeper", "keys": [FILE_KEY]}]
    for name in consumers:
        people.append({"name": name} if rules is None else {"name": name, "rules": rules})
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "services": [{"name": "m", "provider": "mock"}],
        "rules": [chat, other],
        "consumers": people,
    }


def _chat(gateway: RunningGateway, key: str) -> int:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{gateway.url}/v1/chat/completions"
    return httpx.post(url, json=body, headers=headers, timeout=20).status_code


def _admin(gateway: RunningGateway) -> httpx.Client:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.Client(base_url=gateway.url, headers=auth, timeout=20)


@pytest.fixture
def running() -> Iterator[list[RunningGateway]]:
    gateways: list[RunningGateway] = []
    yield gateways
    for gateway in gateways:
        gateway.stop()


def _start(running: list[RunningGateway], path: Path) -> RunningGateway:
    gateway = RunningGateway(path=path, poll_interval=0.1, keyless=False).start()
    running.append(gateway)
    return gateway


def _serves(gateway: RunningGateway, names: set[str]) -> Callable[[], None]:
    def check() -> None:
        assert set(gateway.runtime.table.consumers) == names

    return check


def test_a_consumer_removed_from_the_file_loses_its_keys_for_good(
    tmp_path: Path, running: list[RunningGateway]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_doc(store, "temp")))
    gateway = _start(running, path)
    made = _admin(gateway).post("/admin/consumers/temp/keys", json={}).json()
    assert _chat(gateway, made["key"]) == 200

    path.write_text(yaml.safe_dump(_doc(store)))
    eventually(_serves(gateway, {"keeper"}))
    assert _chat(gateway, made["key"]) == 401
    shown = _admin(gateway).get(f"/admin/keys/{made['id']}").json()
    assert shown["status"] == "revoked"

    path.write_text(yaml.safe_dump(_doc(store, "temp")))  # the same name, made again
    eventually(_serves(gateway, {"keeper", "temp"}))
    assert _chat(gateway, made["key"]) == 401
    assert _chat(gateway, FILE_KEY) == 200


def test_a_consumer_removed_while_the_gateway_was_down_loses_its_keys(
    tmp_path: Path, running: list[RunningGateway]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_doc(store, "temp")))
    first = _start(running, path)
    made = _admin(first).post("/admin/consumers/temp/keys", json={}).json()
    kept = _admin(first).post("/admin/consumers/keeper/keys", json={}).json()
    first.stop()

    path.write_text(yaml.safe_dump(_doc(store)))
    second = _start(running, path)
    assert _admin(second).get(f"/admin/keys/{made['id']}").json()["status"] == "revoked"
    second.stop()

    path.write_text(yaml.safe_dump(_doc(store, "temp")))
    third = _start(running, path)
    assert _chat(third, made["key"]) == 401
    assert _chat(third, kept["key"]) == 200  # a consumer that stayed keeps its keys


def test_a_gateway_removed_from_the_file_takes_its_consumers_keys(
    tmp_path: Path, running: list[RunningGateway]
) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    with_tenant = _doc(store)
    with_tenant["gateways"] = [{"name": "team-b", **_doc(store, "temp")}]
    del with_tenant["gateways"][0]["gateway"]
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(with_tenant))
    gateway = _start(running, path)
    made = _admin(gateway).post("/admin/gateways/team-b/consumers/temp/keys", json={})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}

    def chat_b() -> int:
        url = f"{gateway.url}/gw/team-b/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(url, json=body, headers=headers, timeout=20).status_code

    assert chat_b() == 200

    def tables(*names: str) -> Callable[[], None]:
        def check() -> None:
            assert set(gateway.runtime.tables) == set(names)

        return check

    path.write_text(yaml.safe_dump(_doc(store)))
    eventually(tables("default"))
    path.write_text(yaml.safe_dump(with_tenant))  # the same gateway and consumer, again
    eventually(tables("default", "team-b"))
    assert chat_b() == 401
    assert _admin(gateway).get(f"/admin/gateways/team-b/keys/{key[:11]}").json()["status"] == (
        "revoked"
    )


def test_a_store_consumer_made_again_under_its_name_does_not_inherit_keys(
    tmp_path: Path, running: list[RunningGateway]
) -> None:
    db = tmp_path / "s.db"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_doc(f"sqlite:///{db}")))
    gateway = _start(running, path)
    api = _admin(gateway)
    assert api.post("/admin/consumers", json={"name": "temp"}).status_code == 201
    made = api.post("/admin/consumers/temp/keys", json={}).json()
    assert _chat(gateway, made["key"]) == 200

    async def remove_consumer_only() -> None:
        # Another writer (an instance racing a mint, an operator's script) removes the
        # consumer and leaves its key behind.
        store = SqliteStore(str(db))
        await store.open()
        try:
            record = next(r for r in await store.entities("default") if r.name == "temp")
            assert await store.delete("default", "consumer", record.id, record.version)
        finally:
            await store.close()

    asyncio.run(remove_consumer_only())
    eventually(_serves(gateway, {"keeper"}))
    assert api.post("/admin/consumers", json={"name": "temp"}).status_code == 201
    assert _chat(gateway, made["key"]) == 401
    assert api.get("/admin/consumers/temp/keys").json()["data"] == []


def test_a_key_shows_the_rules_it_really_has(tmp_path: Path, running: list[RunningGateway]) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        yaml.safe_dump(_doc(f"sqlite:///{tmp_path / 's.db'}", "narrow", rules=["chat"]))
    )
    gateway = _start(running, path)
    api = _admin(gateway)
    wide = api.post("/admin/consumers/narrow/keys", json={"rules": ["chat", "other"]})
    assert wide.status_code == 201, wide.text
    assert wide.json()["rules"] == ["chat"]
    unrestricted = api.post("/admin/consumers/narrow/keys", json={}).json()
    assert unrestricted["rules"] == ["chat"]
    for shown in api.get("/admin/consumers/narrow/keys").json()["data"]:
        assert shown["rules"] == ["chat"]
    assert api.get(f"/admin/keys/{unrestricted['id']}").json()["rules"] == ["chat"]
    # The keeper may use every rule: its key's own rules are what it has.
    keeper = api.post("/admin/consumers/keeper/keys", json={"rules": ["other"]}).json()
    assert keeper["rules"] == ["other"]
    assert api.post("/admin/consumers/keeper/keys", json={}).json()["rules"] is None


def test_a_gateway_left_with_dead_keys_can_still_be_deleted(
    tmp_path: Path, running: list[RunningGateway]
) -> None:
    db = tmp_path / "s.db"
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(_doc(f"sqlite:///{db}")))
    gateway = _start(running, path)
    api = _admin(gateway)
    assert api.post("/admin/gateways", json={"name": "team-c"}).status_code == 201
    assert api.post("/admin/gateways/team-c/consumers", json={"name": "temp"}).status_code == 201
    made = api.post("/admin/gateways/team-c/consumers/temp/keys", json={}).json()

    async def remove_consumer_only() -> None:
        store = SqliteStore(str(db))
        await store.open()
        try:
            record = next(r for r in await store.entities("team-c") if r.kind == "consumer")
            assert await store.delete("team-c", "consumer", record.id, record.version)
        finally:
            await store.close()

    asyncio.run(remove_consumer_only())

    def revoked() -> None:
        shown = api.get(f"/admin/gateways/team-c/keys/{made['id']}").json()
        assert shown["status"] == "revoked"

    eventually(revoked)  # the key of a store consumer that is gone: revoked by the follower
    assert api.delete("/admin/gateways/team-c").status_code == 204
    assert api.get("/admin/gateways/team-c").status_code == 404
