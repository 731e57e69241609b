from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import KEY, OTHER_KEY, openai_service
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.openai_server import FakeOpenAI


def standard_config(fake: FakeOpenAI, closed_port: int) -> dict[str, Any]:
    return {
        "gateway": {"max_body_bytes": 64 * 1024},
        "services": [
            openai_service(
                "openai",
                fake.port,
                # It serves the fake's failing models one after another, which would eject
                # the one target every test of a module shares (docs/resilience.md).
                healthchecks={},
                headers={"OpenAI-Organization": "org-123"},
                credentials={
                    "header_name": "Authorization",
                    "header_value": "Bearer sk-upstream-secret",
                },
            ),
            openai_service(
                "keyed",
                fake.port,
                path="/openai/v1",
                credentials={"param_name": "api-key", "param_value": "param-secret"},
            ),
            openai_service("down", closed_port, retries=0),
            openai_service("slow", fake.port, timeout="500ms", retries=0),
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["gpt-4o-mini", "chat"]},
                "targets": [{"service": "openai", "model": "gpt-4o-mini"}],
            },
            {
                "name": "passthrough",
                "match": {"models": ["fake-*", "fail-*", "flaky-*", "drop-stream"]},
                "targets": [{"service": "openai"}],
                "fallback_on": [],
            },
            {"name": "down", "match": {"models": ["down-model"]}, "targets": [{"service": "down"}]},
            {
                "name": "slow",
                "match": {"models": ["slow", "stall-stream"]},
                "targets": [{"service": "slow"}],
            },
            {
                "name": "keyed",
                "match": {"models": ["keyed-model"]},
                "targets": [{"service": "keyed"}],
            },
            {"name": "mock", "match": {"models": ["demo-model"]}, "targets": [{"service": "demo"}]},
            {
                "name": "private",
                "match": {"models": ["team-b-only"]},
                "targets": [{"service": "openai"}],
            },
        ],
        "consumers": [
            {
                "name": "team-a",
                "keys": [KEY],
                "rules": ["chat", "passthrough", "down", "slow", "keyed", "mock"],
            },
            {"name": "team-b", "keys": [OTHER_KEY]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(fake_openai: FakeOpenAI) -> Iterator[RunningGateway]:
    running = RunningGateway(standard_config(fake_openai, free_port())).start()
    yield running
    running.stop()
