"""What a client sends that a provider would act on with the gateway's identity passes
only when the service allows it.

A ``gs://`` URI in a message is read by Gemini or Vertex AI with the service's own
Google identity (any bucket it may read), so it is refused unless the service sets
``allow_gs_uris``. An ``anthropic-beta`` header turns on provider features (the
Files API of the gateway's organisation, MCP connections, code execution) billed
to and acting as the gateway, so only the betas a service lists in
``anthropic_betas`` reach Anthropic; ``anthropic-version`` still passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.path_recorder import PathRecorder

GS_URI = "gs://private-bucket/report.pdf"


@pytest.fixture(scope="module")
def recorder() -> Iterator[PathRecorder]:
    server = PathRecorder().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(recorder: PathRecorder) -> Iterator[RunningGateway]:
    def service(name: str, provider: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": provider,
            "protocol": "http",
            "host": "127.0.0.1",
            "port": recorder.port,
            "retries": 0,
            **extra,
        }

    key = {"param_name": "key", "param_value": "gemini-key-0001"}
    token = {"header_name": "Authorization", "header_value": "Bearer vertex-token-0001"}
    anthropic = {"header_name": "x-api-key", "header_value": "anthropic-key-0001"}
    services = [
        service("gemini", "gemini", credentials=key),
        service("gemini-gs", "gemini", credentials=key, allow_gs_uris=True),
        service("vertex", "vertex", credentials=token, project="p"),
        service("vertex-gs", "vertex", credentials=token, project="p", allow_gs_uris=True),
        service("claude", "anthropic", credentials=anthropic),
        service(
            "claude-betas",
            "anthropic",
            credentials=anthropic,
            anthropic_betas=["prompt-caching-2024-07-31", "interleaved-thinking-*"],
        ),
    ]
    config = {
        "services": services,
        "rules": [
            {
                "name": s["name"],
                "match": {"headers": {"x-target": s["name"]}},
                "targets": [{"service": s["name"], "model": "some-model"}],
                "fallback_on": [],
            }
            for s in services
        ],
        "consumers": [{"name": "tester", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def _with_file(gateway: RunningGateway, service: str) -> httpx.Response:
    content = [
        {"type": "text", "text": "summarise"},
        {"type": "image_url", "image_url": {"url": GS_URI}},
    ]
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {KEY}", "x-target": service},
        timeout=10,
    )


@pytest.mark.parametrize("service", ["gemini", "vertex"])
def test_a_gs_uri_is_refused_unless_the_service_allows_it(
    gateway: RunningGateway, recorder: PathRecorder, service: str
) -> None:
    before = len(recorder.requests)
    refused = _with_file(gateway, service)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "gs_uris_not_allowed"
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert f"service '{service}'" in error["message"] and "allow_gs_uris" in error["message"]
    assert len(recorder.requests) == before  # nothing was sent

    allowed = _with_file(gateway, f"{service}-gs")
    assert allowed.status_code == 404  # the recorder's answer: the request went out
    parts = recorder.last["body"]["contents"][0]["parts"]
    assert parts[1]["fileData"]["fileUri"] == GS_URI


def _messages(gateway: RunningGateway, service: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": KEY, "x-target": service, **headers},
        timeout=10,
    )


BETAS = "files-api-2025-04-14, prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"


def test_anthropic_betas_pass_only_when_the_service_lists_them(
    gateway: RunningGateway, recorder: PathRecorder
) -> None:
    sent = {"anthropic-version": "2023-06-01", "anthropic-beta": BETAS}
    _messages(gateway, "claude", sent)
    headers = recorder.last["headers"]
    assert headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in headers

    _messages(gateway, "claude-betas", sent)
    headers = recorder.last["headers"]
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"

    _messages(gateway, "claude-betas", {"anthropic-beta": "files-api-2025-04-14"})
    assert "anthropic-beta" not in recorder.last["headers"]  # none of them allowed
