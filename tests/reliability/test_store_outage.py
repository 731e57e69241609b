"""The Admin API while its store is away: every call is a 503 in the Admin API's JSON error
shape (``store_unavailable``, with a Retry-After), nothing is half-written, the data plane
keeps serving, and once the store is back the API answers again and the running routing
matches the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import eventually
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import postgres_schema
from tests.fakes.tcp_proxy import TcpProxy
from tests.reliability.conftest import ADMIN_KEY, AUTH, CLIENT_KEY, seen
from tests.security.leaks import Leaks

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _config(store: str) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "audit": {"enabled": False},
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "r", "targets": [{"service": "mock"}]}],
        "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
    }


@pytest.fixture
def outage() -> Iterator[tuple[RunningGateway, TcpProxy]]:
    """A gateway whose PostgreSQL store is reached through a proxy the test can cut."""
    with postgres_schema() as direct:
        parts = urlsplit(direct)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).up()
        through = direct.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}", 1)
        gateway = RunningGateway(_config(through)).start()
        try:
            yield gateway, proxy
        finally:
            gateway.stop()
            proxy.stop()


def _unavailable(leaks: Leaks, answer: httpx.Response) -> None:
    seen(leaks, answer)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "store_unavailable" and error["type"] == "upstream_unavailable"
    assert int(answer.headers["retry-after"]) >= 1


def test_the_admin_api_is_503_while_the_store_is_away_and_writes_nothing(
    outage: tuple[RunningGateway, TcpProxy], leaks: Leaks
) -> None:
    gateway, proxy = outage
    admin = httpx.Client(
        base_url=gateway.url + "/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert admin.post("/services", json={"name": "before", "provider": "mock"}).status_code == 201
    assert admin.post("/consumers", json={"name": "minted"}).status_code == 201

    proxy.down()
    calls: list[Callable[[], httpx.Response]] = [
        lambda: admin.get("/services"),
        lambda: admin.get("/services/before"),
        lambda: admin.post("/services", json={"name": "during", "provider": "mock"}),
        lambda: admin.put("/services/before", json={"name": "before", "provider": "mock"}),
        lambda: admin.patch("/services/before", json={"description": "changed"}),
        lambda: admin.delete("/services/before"),
        lambda: admin.post("/consumers/minted/keys", json={}),
        lambda: admin.get("/keys"),
        lambda: admin.post("/gateways", json={"name": "during-gw"}),
        lambda: admin.get("/gateways"),
    ]
    for call in calls:
        _unavailable(leaks, call())
    # The data plane needs no store: requests keep flowing on the running table.
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=AUTH)
    assert answer.status_code == 200

    proxy.up()

    def answers() -> httpx.Response:
        listed = admin.get("/services")
        assert listed.status_code == 200, listed.text
        return listed

    names = {s["name"] for s in eventually(answers, 15).json()["data"]}
    assert names == {"mock", "before"}  # nothing of what was refused landed
    before = admin.get("/services/before").json()
    assert before.get("description") is None
    assert admin.get("/gateways/during-gw").status_code == 404
    assert admin.get("/consumers/minted/keys").json()["data"] == []
    # The running table is the store's: the refused create is not routable, a new write is.
    made = admin.post("/services", json={"name": "after", "provider": "mock"})
    assert made.status_code == 201
    assert "during" not in gateway.runtime.table.services
    assert "after" in gateway.runtime.table.services
    admin.close()


def test_a_write_whose_answer_needs_the_store_again_still_answers(
    outage: tuple[RunningGateway, TcpProxy], leaks: Leaks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A minted key is stored, then the store goes away before the answer is made: the key
    was written, so the answer must show it (once) rather than fail and leave a key no one
    ever saw."""
    gateway, _ = outage
    admin = httpx.Client(
        base_url=gateway.url + "/admin", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert admin.post("/consumers", json={"name": "minted"}).status_code == 201
    store = gateway.runtime.store
    assert store is not None

    async def gone(*args: Any) -> Any:
        raise ConnectionResetError("the store went away")

    monkeypatch.setattr(store, "key_usage", gone)  # after the write, before the answer
    minted = seen(leaks, admin.post("/consumers/minted/keys", json={}))
    assert minted.status_code == 201, minted.text
    key = minted.json()["key"]
    monkeypatch.undo()
    used = httpx.post(
        gateway.url + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
    )
    assert used.status_code == 200
    admin.close()
