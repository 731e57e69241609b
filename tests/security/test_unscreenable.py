"""What a rule's guardrails cannot screen is refused, not sent on unscreened: a realtime
session's frames and a file upload through a rule with guardrails or transforms are a 403
``unscreened_endpoint`` before anything reaches the provider, unless the consumer is
granted the rule's services by name (``passthrough``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.batch_server import OPENAI_KEY, FakeBatches
from tests.fakes.gateway import RunningGateway
from tests.fakes.realtime_server import REALTIME_KEY, FakeRealtime

REDACT = {"guardrails": {"pii": "redact"}}


@pytest.fixture(scope="module")
def realtime() -> Iterator[FakeRealtime]:
    server = FakeRealtime().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def files() -> Iterator[FakeBatches]:
    server = FakeBatches().start()
    yield server
    server.stop()


def config(realtime: FakeRealtime, files: FakeBatches) -> dict[str, Any]:
    def at(port: int, key: str) -> dict[str, Any]:
        return {
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": port,
            "credentials": {"header_name": "Authorization", "header_value": f"Bearer {key}"},
        }

    return {
        "services": [
            {"name": "rt", **at(realtime.port, REALTIME_KEY)},
            {"name": "oa", **at(files.port, OPENAI_KEY)},
        ],
        "rules": [
            {
                "name": "voice",
                "match": {"models": ["voice"]},
                "targets": [{"service": "rt", "model": "gpt-realtime-x"}],
                "policies": REDACT,
            },
            {
                "name": "files",
                "match": {"paths": ["/v1/files", "/v1/batches"]},
                "targets": [{"service": "oa"}],
                "policies": REDACT,
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["voice", "files"]},
            {
                "name": "team-b",
                "keys": [OTHER_KEY],
                "rules": ["voice", "files"],
                "passthrough": ["rt", "oa"],  # unscreened access, granted by name
            },
        ],
    }


@pytest.fixture(scope="module")
def gateway(realtime: FakeRealtime, files: FakeBatches) -> Iterator[RunningGateway]:
    running = RunningGateway(config(realtime, files), keyless=False).start()
    yield running
    running.stop()


def _session(gateway: RunningGateway, key: str) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{gateway.port}/v1/realtime?model=voice"
    with connect(url, additional_headers={"authorization": f"Bearer {key}"}) as socket:
        first: dict[str, Any] = orjson.loads(socket.recv(timeout=5))
        return first


def test_a_realtime_session_through_a_screening_rule_is_refused(
    gateway: RunningGateway, realtime: FakeRealtime
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _session(gateway, KEY)
    response = refused.value.response
    assert response.status_code == 403
    error = orjson.loads(response.body)["error"]
    assert error["code"] == "unscreened_endpoint"
    assert "voice" in error["message"] and "passthrough" in error["message"]
    assert _session(gateway, OTHER_KEY)["type"] == "session.created"


def test_a_file_upload_through_a_screening_rule_is_refused(
    gateway: RunningGateway, files: FakeBatches
) -> None:
    before = len(files.seen)
    line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    client = openai.OpenAI(api_key=KEY, base_url=f"{gateway.url}/v1", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.files.create(file=("in.jsonl", line), purpose="batch")
    assert refused.value.code == "unscreened_endpoint"
    assert len(files.seen) == before  # nothing reached the provider
    granted = openai.OpenAI(api_key=OTHER_KEY, base_url=f"{gateway.url}/v1", max_retries=0)
    made = granted.files.create(file=("in.jsonl", line), purpose="batch")
    assert made.id.startswith("file-")
