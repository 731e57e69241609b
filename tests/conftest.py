from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-team-a-0001"
OTHER_KEY = "sk-test-team-b-0002"


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def start_gateway() -> Iterator[Callable[[dict[str, Any]], RunningGateway]]:
    running: list[RunningGateway] = []

    def start(config: dict[str, Any]) -> RunningGateway:
        gateway = RunningGateway(config).start()
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()


def openai_service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        **extra,
    }


@pytest.fixture
def closed_port() -> int:
    return free_port()
