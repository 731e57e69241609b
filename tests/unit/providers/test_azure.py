"""The Azure OpenAI adapter: URLs for both API styles (golden fixtures) and Azure's error bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.errors import InvalidRequest, UpstreamStatusError
from sluicegate.providers.azure import DEFAULT_API_VERSION, AzureAdapter
from sluicegate.providers.registry import ADAPTERS
from sluicegate.routing.compile import compile_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "azure"


def cases() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(FIXTURES.glob("*.json"))]


@pytest.mark.parametrize(("name", "case"), cases())
def test_request_translation(name: str, case: dict[str, Any]) -> None:
    adapter = AzureAdapter(case["api_version"])
    built = adapter.build(
        case["endpoint"], case["canonical"], case["raw"].encode(), case["model"], case["base_url"]
    )
    assert built.url == case["expected_url"]
    assert json.loads(built.body) == case["expected"]
    if case["raw"] and case["expected"] == json.loads(case["raw"]):
        assert built.body == case["raw"].encode()  # an OpenAI client's bytes, untouched


def test_the_service_picks_the_api_version() -> None:
    assert ADAPTERS["azure"] is AzureAdapter
    config = parse_config(
        {
            "services": [
                {"name": "a", "provider": "azure", "host": "r.openai.azure.com"},
                {
                    "name": "b",
                    "provider": "azure",
                    "host": "r.openai.azure.com",
                    "api_version": "v1",
                },
            ],
            "rules": [{"name": "r", "targets": [{"service": "a"}]}],
        },
        env={},
    ).config
    table = compile_config(config)
    dated, v1 = table.services["a"].adapter, table.services["b"].adapter
    assert isinstance(dated, AzureAdapter) and isinstance(v1, AzureAdapter)
    assert dated.api_version == DEFAULT_API_VERSION
    assert v1.api_version == "v1"
    base = "https://r.openai.azure.com/openai"  # the catalog's default path
    assert dated.build("chat", {}, b"{}", "gpt-4o", base).url == (
        f"{base}/deployments/gpt-4o/chat/completions?api-version={DEFAULT_API_VERSION}"
    )
    assert v1.build("embeddings", {}, b"{}", "x", base).url == f"{base}/v1/embeddings"


@pytest.mark.parametrize("model", ["../admin", "a/b", "a?x=1", "", ".hidden", "x" * 65])
def test_a_model_that_is_no_deployment_name_is_400(model: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        AzureAdapter().build("chat", {}, b"{}", model, "https://h/openai")
    assert info.value.param == "model"


def test_content_filter_keeps_its_status_and_code() -> None:
    body = {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        }
    }
    error = AzureAdapter().error(400, {}, json.dumps(body).encode())
    assert isinstance(error, UpstreamStatusError)
    assert error.http_status == 400
    assert error.code == "content_filter"
    assert error.param == "prompt"
    assert error.openai_body()["error"]["type"] == "invalid_request_error"


def test_context_length_exceeded_passes_through() -> None:
    body = b'{"error":{"message":"too long","type":"invalid_request_error","param":"messages",'
    body += b'"code":"context_length_exceeded"}}'
    error = AzureAdapter().error(400, {}, body)
    assert error.code == "context_length_exceeded"


def test_rate_limit_keeps_retry_after_and_gets_openai_code() -> None:
    body = b'{"error":{"code":"429","message":"Requests ... Please retry after 7 seconds."}}'
    error = AzureAdapter().error(429, {"retry-after": "7"}, body)
    assert error.http_status == 429
    assert error.headers == {"retry-after": "7"}
    assert error.code == "rate_limit_exceeded"


def test_versions_that_refuse_stream_options_are_sent_none() -> None:
    body = {"model": "d", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    raw = json.dumps(body).encode()
    base = "https://r.openai.azure.com/openai"
    for version, asks in [("2024-02-01", False), ("2024-09-01-preview", True), ("v1", True)]:
        sent = json.loads(AzureAdapter(version).build("chat", body, raw, "d", base).body)
        assert ("stream_options" in sent) is asks, version
