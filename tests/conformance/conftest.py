"""The conformance suite: every provider adapter, behind a running gateway, through the openai SDK.

A provider joins by adding a ``Provider`` row: its fake server, its service
config, and the capabilities it has. Each test declares the capability it
needs and is skipped for providers without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.server import FakeServer

ALL = frozenset(
    {
        "text",
        "system",
        "images",
        "tools",
        "parallel_tools",
        "json",
        "stop",
        "length",
        "cached_usage",
        "thinking",
        "context_length_error",
        "overload_529",
    }
)


@dataclass(frozen=True)
class Provider:
    name: str
    fake: Callable[[], FakeServer]
    service: Callable[[int], dict[str, Any]]
    capabilities: frozenset[str]


def _local(provider: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": provider,
        "provider": provider,
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
        **extra,
    }


PROVIDERS = [
    Provider(
        "openai",
        FakeOpenAI,
        lambda port: _local(
            "openai",
            port,
            credentials={"header_name": "Authorization", "header_value": "Bearer sk-oai"},
        ),
        ALL - {"thinking", "context_length_error", "overload_529"},
    ),
    Provider(
        "anthropic",
        FakeAnthropic,
        lambda port: _local(
            "anthropic",
            port,
            credentials={"header_name": "x-api-key", "header_value": "sk-ant-fake"},
        ),
        ALL,
    ),
]


@pytest.fixture(scope="module", params=PROVIDERS, ids=lambda p: p.name)
def provider(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Provider, FakeServer, RunningGateway]]:
    spec: Provider = request.param
    fake = spec.fake().start()
    service = spec.service(fake.port)
    wrong_key = {**service, "name": "wrong-key"}
    if "credentials" in service:
        value = service["credentials"]["header_value"]
        wrong = "Bearer sk-wrong" if value.startswith("Bearer ") else "sk-wrong"
        wrong_key["credentials"] = {**service["credentials"], "header_value": wrong}
    gateway = RunningGateway(
        {
            "services": [service, wrong_key],
            "rules": [
                {
                    "name": "bad-credentials",
                    "match": {"models": ["bad-credentials"]},
                    "targets": [{"service": "wrong-key", "model": "any"}],
                },
                {"name": "all", "match": {"models": ["*"]}, "targets": [{"service": spec.name}]},
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()
    yield spec, fake, gateway
    gateway.stop()
    fake.stop()


@pytest.fixture
def client(provider: tuple[Provider, FakeServer, RunningGateway]) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider[2].url + "/v1", api_key=KEY, max_retries=0)


@pytest.fixture
def needs(provider: tuple[Provider, FakeServer, RunningGateway]) -> Callable[[str], None]:
    def check(capability: str) -> None:
        if capability not in provider[0].capabilities:
            pytest.skip(f"{provider[0].name} has no {capability}")

    return check
