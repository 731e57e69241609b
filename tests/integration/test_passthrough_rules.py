"""Native pass-through chosen by a rule's ``match.paths`` (literal or glob): an OpenAI path
the gateway does not model (vector stores, assistants) goes, untouched but for the key, to
the rule's target service, under the caller's allow list and the rule's limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import KEY, OTHER_KEY, logged_row, settled
from tests.fakes.gateway import RunningGateway
from tests.fakes.native_server import NATIVE_KEY, FakeNative

ADMIN_KEY = "adm-path-rules-key-01"


@pytest.fixture(scope="module")
def native() -> Iterator[FakeNative]:
    server = FakeNative().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    native: FakeNative, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = tmp_path_factory.mktemp("rules") / "sluicegate.db"
    config: dict[str, Any] = {
        "gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{store}"},
        "services": [
            {
                "name": "vectors",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": native.port,
                "credentials": {"header_name": "x-goog-api-key", "header_value": NATIVE_KEY},
            },
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [
            {
                "name": "vector-stores",
                "match": {"paths": ["/v1/vector_stores", "/v1/vector_stores/*"]},
                "targets": [{"service": "vectors"}],
                "policies": {"rate_limit": {"requests": 3, "window": "1m", "per": "consumer"}},
            },
            {"name": "chat", "match": {"models": ["demo"]}, "targets": [{"service": "demo"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY]},
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["chat"]},
        ],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def test_a_path_rule_passes_an_unmodelled_endpoint_through(
    gateway: RunningGateway, native: FakeNative
) -> None:
    auth = {"authorization": f"Bearer {KEY}", "x-request-id": "vs-create"}
    made = httpx.post(
        gateway.url + "/v1/vector_stores/vs_1/files?limit=2",
        json={"file_id": "file-1"},
        headers={**auth, "openai-beta": "assistants=v2"},
    )
    assert made.status_code == 201, made.text
    assert made.json() == {
        "method": "POST",
        "path": "/v1/vector_stores/vs_1/files",
        "query": {"limit": "2"},
    }
    assert made.headers["x-sluicegate-service"] == "vectors"
    seen = native.seen[-1]
    assert seen["headers"]["x-goog-api-key"] == NATIVE_KEY  # the service's key, not the client's
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["openai-beta"] == "assistants=v2"
    assert seen["body"] == b'{"file_id":"file-1"}'
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    row = logged_row(admin, "vs-create", 10)
    assert (row["endpoint"], row["rule"], row["service"], row["status"]) == (
        "passthrough",
        "vector-stores",
        "vectors",
        201,
    )


def test_path_rules_keep_allow_lists_limits_and_unknown_paths(gateway: RunningGateway) -> None:
    refused = httpx.get(
        gateway.url + "/v1/vector_stores", headers={"authorization": f"Bearer {OTHER_KEY}"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "rule_not_allowed"
    unknown = httpx.get(gateway.url + "/v1/assistants", headers={"authorization": f"Bearer {KEY}"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_path"
    climbing = httpx.get(
        gateway.url + "/v1/vector_stores/%2e%2e/%2e%2e/secrets",
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert climbing.status_code == 400
    statuses = [
        settled(
            gateway.url,
            lambda: httpx.get(
                gateway.url + "/v1/vector_stores", headers={"authorization": f"Bearer {KEY}"}
            ),
        ).status_code
        for _ in range(4)
    ]
    assert statuses[-1] == 429  # the rule's 3 a minute, the first test's call included
