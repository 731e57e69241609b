"""``realtime_sessions`` across instances: two gateways on one Redis count a consumer's open
sessions together, so a session open on one takes the place the other would give."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.fakes.gateway import RunningGateway
from tests.fakes.realtime_server import REALTIME_KEY, FakeRealtime

REDIS = "redis://127.0.0.1:6379/0"
CLIENT_KEY = "sk-test-shared-rt-" + secrets.token_hex(6)
CONSUMER = "rt-" + secrets.token_hex(4)  # its own keys in the shared Redis


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRealtime]:
    server = FakeRealtime().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(fake: FakeRealtime) -> Iterator[list[RunningGateway]]:
    config: dict[str, Any] = {
        "gateway": {"redis": REDIS},
        "services": [
            {
                "name": "oa-rt",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake.port,
                "credentials": {
                    "header_name": "Authorization",
                    "header_value": f"Bearer {REALTIME_KEY}",
                },
            }
        ],
        "rules": [
            {"name": "voice", "match": {"models": ["voice"]}, "targets": [{"service": "oa-rt"}]}
        ],
        "consumers": [{"name": CONSUMER, "keys": [CLIENT_KEY], "realtime_sessions": 1}],
    }
    running = [RunningGateway(config, keyless=False).start() for _ in range(2)]
    yield running
    for one in running:
        one.stop()
    redis.Redis.from_url(REDIS).delete(f"sluicegate:realtime:{{default}}:{CONSUMER}")


def url(gateway: RunningGateway) -> str:
    return f"ws://127.0.0.1:{gateway.port}/v1/realtime?model=voice"


def test_a_session_on_one_instance_counts_on_the_other(pair: list[RunningGateway]) -> None:
    first, second = pair
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    with connect(url(first), additional_headers=headers) as socket:
        assert orjson.loads(socket.recv(timeout=10))["type"] == "session.created"
        with pytest.raises(InvalidStatus) as refused:
            connect(url(second), additional_headers=headers).close()
        assert refused.value.response.status_code == 429
        body = orjson.loads(refused.value.response.body)
        assert body["error"]["code"] == "too_many_sessions"
    # Closed on the first instance: its place is free on the second.
    for _ in range(50):
        try:
            with connect(url(second), additional_headers=headers) as socket:
                assert orjson.loads(socket.recv(timeout=10))["type"] == "session.created"
            break
        except InvalidStatus:
            time.sleep(0.05)
    else:
        raise AssertionError("the place of the closed session was never given back")
