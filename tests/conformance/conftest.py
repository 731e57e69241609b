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
from tests.fakes import azure_server
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_server import FakeAzure
from tests.fakes.bedrock_server import ACCESS_KEY, SECRET_KEY, FakeBedrock
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.gateway import RunningGateway
from tests.fakes.gemini_server import (
    GEMINI_KEY,
    PROJECT,
    FakeGemini,
    FakeVertex,
    other_service_account,
    service_account_json,
)
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.server import FakeServer

ALL = frozenset(
    {
        "text",
        "system",
        "images",
        "image_urls",
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
        # llama.cpp's server: a tool call's id and name repeated in every chunk.
        "openai-compatible",
        lambda: FakeOpenAI("llama.cpp"),
        lambda port: _local(
            "openai-compatible",
            port,
            credentials={"header_name": "Authorization", "header_value": "Bearer sk-llama"},
        ),
        ALL - {"thinking", "context_length_error", "overload_529"},
    ),
    Provider(
        # Mistral's API: refuses stream_options, reports a stream's usage unasked.
        "mistral",
        lambda: FakeOpenAI("mistral"),
        lambda port: _local(
            "mistral",
            port,
            credentials={"header_name": "Authorization", "header_value": "Bearer sk-mistral"},
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
    Provider(
        "bedrock",
        FakeBedrock,
        lambda port: _local(
            "bedrock",
            port,
            credentials={
                "aws_access_key_id": ACCESS_KEY,
                "aws_secret_access_key": SECRET_KEY,
                "aws_region": "us-east-1",
            },
        ),
        # Images: base64 only (Bedrock fetches no URL). No 529, no thinking mapping.
        ALL - {"image_urls", "thinking", "overload_529"},
    ),
    Provider(
        "cohere",
        FakeCohere,
        lambda port: _local(
            "cohere",
            port,
            credentials={"header_name": "Authorization", "header_value": "Bearer co-fake"},
        ),
        # Cohere has no 529; its mid-stream errors are tested in tests/integration/test_cohere.py.
        ALL - {"overload_529"},
    ),
    Provider(
        "azure",
        FakeAzure,
        lambda port: _local(
            "azure",
            port,
            api_version="2024-10-21",
            credentials={"header_name": "api-key", "header_value": azure_server.API_KEY},
        ),
        # Chat completions carry no reasoning text; Azure has no 529.
        ALL - {"thinking", "overload_529"},
    ),
    Provider(
        "azure-entra",
        FakeAzure,
        lambda port: {
            **_local(
                "azure",
                port,
                credentials={
                    "azure_tenant_id": azure_server.TENANT,
                    "azure_client_id": azure_server.CLIENT_ID,
                    "azure_client_secret": azure_server.CLIENT_SECRET,
                    "azure_authority_host": f"http://127.0.0.1:{port}",
                    # An API Management key sent beside the token; the "bad credentials"
                    # test spoils this one (a wrong client secret is tested in
                    # tests/integration/test_azure.py).
                    "header_name": "ocp-apim-subscription-key",
                    "header_value": azure_server.APIM_KEY,
                },
            ),
            "name": "azure-entra",
        },
        ALL - {"thinking", "overload_529"},
    ),
    Provider(
        "gemini",
        FakeGemini,
        lambda port: _local(
            "gemini",
            port,
            credentials={"header_name": "x-goog-api-key", "header_value": GEMINI_KEY},
        ),
        ALL - {"overload_529"},  # Google's overload is a plain 503
    ),
    Provider(
        "vertex",
        FakeVertex,
        lambda port: _local(
            "vertex",
            port,
            project=PROJECT,
            credentials={
                "gcp_service_account_json": service_account_json(f"http://127.0.0.1:{port}/token")
            },
        ),
        ALL - {"overload_529"},
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
    if "aws_secret_access_key" in service.get("credentials", {}):
        wrong_key["credentials"] = {**service["credentials"], "aws_secret_access_key": "sk-wrong"}
    elif "gcp_service_account_json" in service.get("credentials", {}):
        account = other_service_account(service["credentials"]["gcp_service_account_json"])
        wrong_key["credentials"] = {"gcp_service_account_json": account}
    elif "credentials" in service:
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
