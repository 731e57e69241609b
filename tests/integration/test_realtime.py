"""Realtime sessions through the gateway: the ``websockets`` client (and the openai SDK)
against a fake Realtime server. Frames go both ways, the session's usage is recorded and
counted against limits, a limit on sessions is refused with a clear error, and either side
ending ends the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from socket import SHUT_RDWR
from typing import Any

import httpx
import openai
import orjson
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import KEY, OTHER_KEY, eventually, logged_row
from tests.fakes.gateway import RunningGateway
from tests.fakes.realtime_server import (
    AZURE_REALTIME_KEY,
    AZURE_REALTIME_VERSION,
    CACHED,
    INPUT,
    OUTPUT,
    REALTIME_KEY,
    FakeRealtime,
)

ADMIN_KEY = "adm-realtime-key-0001"
ONE_SESSION_KEY = "sk-test-team-s-0005"
TOKENS_KEY = "sk-test-team-k-0006"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRealtime]:
    server = FakeRealtime().start()
    yield server
    server.stop()


def config(fake: FakeRealtime, store: Path) -> dict[str, Any]:
    local = {"protocol": "http", "host": "127.0.0.1", "port": fake.port}
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{store}"},
        "services": [
            {
                "name": "oa-rt",
                "provider": "openai",
                **local,
                "credentials": {
                    "header_name": "Authorization",
                    "header_value": f"Bearer {REALTIME_KEY}",
                },
            },
            {
                "name": "az-rt",
                "provider": "azure",
                **local,
                "api_version": AZURE_REALTIME_VERSION,
                "credentials": {"header_name": "api-key", "header_value": AZURE_REALTIME_KEY},
            },
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [
            {
                "name": "voice",
                "match": {"models": ["voice"]},
                "targets": [{"service": "oa-rt", "model": "gpt-realtime-x"}],
            },
            {
                "name": "azure-voice",
                "match": {"models": ["azure-voice"]},
                "targets": [{"service": "az-rt", "model": "my-realtime-deployment"}],
            },
            {"name": "chat", "match": {"models": ["demo"]}, "targets": [{"service": "demo"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["voice", "azure-voice", "chat"]},
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["chat"]},
            {
                "name": "team-s",
                "keys": [ONE_SESSION_KEY],
                "rules": ["voice"],
                "realtime_sessions": 1,
            },
            {
                "name": "team-k",
                "keys": [TOKENS_KEY],
                "rules": ["voice"],
                "limits": {"tokens": 100, "window": "1m"},
            },
        ],
        "pricing": {"gpt-realtime-x": {"input": 4.0, "output": 16.0, "cached_input": 0.4}},
    }


@pytest.fixture(scope="module")
def gateway(
    fake: FakeRealtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = tmp_path_factory.mktemp("realtime") / "sluicegate.db"
    running = RunningGateway(config(fake, store), keyless=False).start()
    yield running
    running.stop()


@pytest.fixture
def admin(gateway: RunningGateway) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as http:
        yield http


def ws_url(gateway: RunningGateway, model: str = "voice") -> str:
    return f"ws://127.0.0.1:{gateway.port}/v1/realtime?model={model}"


def event(socket: ClientConnection) -> dict[str, Any]:
    message = socket.recv(timeout=10)
    assert isinstance(message, str), message
    found: dict[str, Any] = orjson.loads(message)
    return found


def until(socket: ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        seen.append(event(socket))
        if seen[-1]["type"] == kind:
            return seen


def test_frames_go_both_ways_and_usage_is_recorded(
    gateway: RunningGateway, fake: FakeRealtime, admin: httpx.Client
) -> None:
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": "rt-session-1"}
    with connect(ws_url(gateway), additional_headers=headers) as socket:
        created = event(socket)
        assert created["type"] == "session.created"
        # The rule's target model, the service's key; never the client's.
        assert created["session"]["model"] == "gpt-realtime-x"
        upstream = fake.sockets[-1]
        assert upstream["headers"]["authorization"] == f"Bearer {REALTIME_KEY}"
        assert KEY not in str(upstream["headers"])
        socket.send(
            orjson.dumps({"type": "session.update", "session": {"voice": "alloy"}}).decode()
        )
        socket.send(b"\x00\x01audio-bytes\xff")
        assert socket.recv(timeout=10) == b"\x00\x01audio-bytes\xff"
        socket.send(orjson.dumps({"type": "response.create"}).decode())
        seen = until(socket, "response.done")
        assert [e["type"] for e in seen] == [
            "response.created",
            "response.output_text.delta",
            "response.done",
        ]
        socket.send(orjson.dumps({"type": "response.create"}).decode())
        until(socket, "response.done")
    assert upstream["events"][0] == {"type": "session.update", "session": {"voice": "alloy"}}
    assert upstream["binary"] == [b"\x00\x01audio-bytes\xff"]
    row = logged_row(admin, "rt-session-1", 10)
    assert row["endpoint"] == "realtime"
    assert (row["consumer"], row["rule"], row["service"], row["model"]) == (
        "team-a",
        "voice",
        "oa-rt",
        "voice",
    )
    assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (
        2 * INPUT,
        2 * OUTPUT,
        2 * CACHED,
    )
    fresh = 2 * (INPUT - CACHED)
    expected = (fresh * 4.0 + 2 * CACHED * 0.4 + 2 * OUTPUT * 16.0) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    assert row["status"] == 101


def test_browser_subprotocol_key(gateway: RunningGateway, fake: FakeRealtime) -> None:
    protocols = ["realtime", f"openai-insecure-api-key.{KEY}", "openai-beta.realtime-v1"]
    with connect(ws_url(gateway), subprotocols=protocols) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "realtime"
        assert event(socket)["type"] == "session.created"
        upstream = fake.sockets[-1]
    assert KEY not in str(upstream["headers"])
    assert upstream["headers"].get("openai-beta") == "realtime=v1"


def test_the_openai_sdk_connects(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    with client.realtime.connect(model="voice") as connection:
        assert connection.recv().type == "session.created"
        connection.response.create()
        kinds = []
        for item in connection:
            kinds.append(item.type)
            if item.type == "response.done":
                break
    assert kinds[-1] == "response.done"


def test_refusals_come_before_the_upgrade(gateway: RunningGateway) -> None:
    cases = [
        ({}, "voice", 401, "missing_api_key"),
        ({"authorization": "Bearer sk-wrong-key-000"}, "voice", 401, "invalid_api_key"),
        ({"authorization": f"Bearer {KEY}"}, "nope", 404, "model_not_found"),
        ({"authorization": f"Bearer {OTHER_KEY}"}, "voice", 403, "rule_not_allowed"),
        ({"authorization": f"Bearer {KEY}"}, "demo", 400, "unsupported_endpoint"),
    ]
    for headers, model, status, code in cases:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(gateway, model), additional_headers=headers).close()
        response = info.value.response
        assert response.status_code == status, (model, response.body)
        assert orjson.loads(response.body)["error"]["code"] == code


def test_a_limit_on_sessions(gateway: RunningGateway, fake: FakeRealtime) -> None:
    headers = {"authorization": f"Bearer {ONE_SESSION_KEY}"}
    with connect(ws_url(gateway), additional_headers=headers) as first:
        assert event(first)["type"] == "session.created"
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(gateway), additional_headers=headers).close()
        response = info.value.response
        assert response.status_code == 429
        error = orjson.loads(response.body)["error"]
        assert error["code"] == "too_many_sessions"
        assert "1 realtime session" in error["message"]

    # Once the first has ended, there is room again.
    def again() -> None:
        with connect(ws_url(gateway), additional_headers=headers) as second:
            assert event(second)["type"] == "session.created"

    eventually(lambda: _no_raise(again))


def _no_raise(check: Any) -> None:
    try:
        check()
    except InvalidStatus as exc:
        raise AssertionError(exc) from None


def test_session_usage_counts_against_token_limits(gateway: RunningGateway) -> None:
    headers = {"authorization": f"Bearer {TOKENS_KEY}"}
    with connect(ws_url(gateway), additional_headers=headers) as socket:
        event(socket)
        socket.send(orjson.dumps({"type": "response.create"}).decode())
        until(socket, "response.done")  # 150 tokens, of a limit of 100 a minute

    def refused() -> None:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(gateway), additional_headers=headers).close()
        assert info.value.response.status_code == 429

    eventually(refused)


def test_the_upstream_closing_ends_the_session(
    gateway: RunningGateway, fake: FakeRealtime, admin: httpx.Client
) -> None:
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": "rt-closed-1"}
    with connect(ws_url(gateway), additional_headers=headers) as socket:
        event(socket)
        socket.send(orjson.dumps({"type": "response.create"}).decode())
        until(socket, "response.done")
        socket.send(orjson.dumps({"type": "test.close"}).decode())
        with pytest.raises(ConnectionClosed) as info:
            socket.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1011, "fake upstream closing")
    row = logged_row(admin, "rt-closed-1", 10)
    assert row["input_tokens"] == INPUT  # what was used before it closed is still counted
    with connect(ws_url(gateway), additional_headers=headers) as socket:
        event(socket)
        socket.send(orjson.dumps({"type": "test.drop"}).decode())
        with pytest.raises(ConnectionClosed) as info:
            socket.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_a_client_that_leaves_ends_the_upstream_socket(
    gateway: RunningGateway, fake: FakeRealtime
) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    closed = fake.closed
    with connect(ws_url(gateway), additional_headers=headers) as socket:
        event(socket)
        assert fake.open >= 1
        socket.socket.shutdown(SHUT_RDWR)  # gone, without a close frame
        socket.socket.close()

    def upstream_closed() -> None:
        assert fake.closed > closed

    eventually(upstream_closed)


def test_azure_realtime(gateway: RunningGateway, fake: FakeRealtime) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    with connect(ws_url(gateway, "azure-voice"), additional_headers=headers) as socket:
        assert event(socket)["session"]["model"] == "my-realtime-deployment"
        upstream = fake.sockets[-1]
    assert upstream["path"] == "/openai/realtime"
    assert upstream["query"] == {
        "api-version": AZURE_REALTIME_VERSION,
        "deployment": "my-realtime-deployment",
    }
    assert upstream["headers"]["api-key"] == AZURE_REALTIME_KEY


def test_a_service_that_cannot_be_reached_falls_back(
    fake: FakeRealtime, tmp_path: Path, closed_port: int
) -> None:
    document = config(fake, tmp_path / "sluicegate.db")
    document["services"].append(
        {
            "name": "down",
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": closed_port,
            "retries": 0,
        }
    )
    document["rules"][0]["targets"] = [{"service": "down", "model": "gpt-realtime-x"}]
    document["rules"][0]["fallbacks"] = [{"service": "oa-rt", "model": "gpt-realtime-x"}]
    running = RunningGateway(document, keyless=False).start()
    try:
        headers = {"authorization": f"Bearer {KEY}"}
        with connect(ws_url(running), additional_headers=headers) as socket:
            assert event(socket)["type"] == "session.created"
            assert socket.response is not None
            assert socket.response.headers["x-sluicegate-service"] == "oa-rt"
            assert socket.response.headers["x-sluicegate-attempts"] == "2"
    finally:
        running.stop()
    alone = config(fake, tmp_path / "other.db")
    alone["services"][0]["port"] = closed_port
    running = RunningGateway(alone, keyless=False).start()
    try:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(running), additional_headers={"authorization": f"Bearer {KEY}"})
        assert info.value.response.status_code == 502
        assert orjson.loads(info.value.response.body)["error"]["type"] == "upstream_error"
    finally:
        running.stop()
