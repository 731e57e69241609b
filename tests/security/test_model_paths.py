"""A model name never reaches another path of a provider's API.

Gemini, Vertex AI, Bedrock and Azure put the model (a deployment) in the URL,
and the gateway's credentials go with the request. A model such as
``gemini-x/../../../other/endpoint`` once sent the Gemini key to another
endpoint, and Vertex took any ``projects/...`` name, another project's
included. Every such name is now a 400 ``invalid_request_error`` naming the
model, and nothing is sent; the names each provider documents still reach the
paths they should, escaped. The fake upstream records each request's raw target.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.path_recorder import PathRecorder

PROJECT = "own-project"
LOCATION = "europe-west4"
OWN = f"projects/{PROJECT}/locations/{LOCATION}"


@pytest.fixture(scope="module")
def recorder() -> Iterator[PathRecorder]:
    server = PathRecorder().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(recorder: PathRecorder) -> Iterator[RunningGateway]:
    def service(name: str, provider: str, credentials: dict[str, str], **extra: Any) -> Any:
        return {
            "name": name,
            "provider": provider,
            "protocol": "http",
            "host": "127.0.0.1",
            "port": recorder.port,
            "retries": 0,
            "credentials": credentials,
            **extra,
        }

    services = [
        service("gemini", "gemini", {"param_name": "key", "param_value": "gemini-key-0001"}),
        service(
            "vertex",
            "vertex",
            {"header_name": "Authorization", "header_value": "Bearer vertex-token-1"},
            project=PROJECT,
            location=LOCATION,
        ),
        service(
            "bedrock",
            "bedrock",
            {
                "aws_access_key_id": "AKIAPATHTEST0001",
                "aws_secret_access_key": "path-test-secret-key",
                "aws_region": "us-east-1",
            },
        ),
        service("azure", "azure", {"header_name": "api-key", "header_value": "azure-key-0001"}),
    ]
    config = {
        "services": services,
        "rules": [
            {
                "name": s["name"],
                "match": {"headers": {"x-target": s["name"]}},
                "targets": [{"service": s["name"]}],
                "fallback_on": [],
            }
            for s in services
        ],
        "consumers": [{"name": "tester", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def _ask(gateway: RunningGateway, service: str, model: str, stream: bool = False) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    headers = {"Authorization": f"Bearer {KEY}", "x-target": service}
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


HOSTILE = [
    "gemini-x/../../../other/endpoint",
    "../../v1beta/files",
    "..",
    ".",
    "gemini-2.0-flash?alt=json",
    "gemini-2.0-flash#fragment",
    "gemini%2F..%2Fother",
    "gemini\\..\\other",
    "gemini\r\nX-Injected: 1",
    "gemini\x00nul",
    "gemini\x7fdel",
]


@pytest.mark.parametrize("service", ["gemini", "vertex", "bedrock", "azure"])
@pytest.mark.parametrize("model", HOSTILE)
def test_path_syntax_in_a_model_is_refused_before_anything_is_sent(
    gateway: RunningGateway, recorder: PathRecorder, service: str, model: str
) -> None:
    before = len(recorder.targets)
    for stream in (False, True):
        answer = _ask(gateway, service, model, stream)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == "model"
        assert model in error["message"]
    assert recorder.targets[before:] == []


STRUCTURED = [
    # Gemini: only its two collections.
    ("gemini", "models/../../files"),
    ("gemini", "files/abc"),
    ("gemini", "tunedModels/"),
    ("gemini", "models/gemini:streamGenerateContent"),
    # Vertex: its own project and location only, and only its model paths.
    ("vertex", "projects/other-project/locations/europe-west4/endpoints/123"),
    ("vertex", f"projects/{PROJECT}/locations/us-central1/endpoints/123"),
    ("vertex", f"{OWN}/datasets/123"),
    ("vertex", f"{OWN}/endpoints/123/extra"),
    ("vertex", "publishers/google/datasets/x"),
    ("vertex", "publishers/google/models/../../../../other-project"),
    # Bedrock: a slash only inside an ARN.
    ("bedrock", "anthropic.claude-3-haiku/../../guardrail"),
    ("bedrock", "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/../x"),
    # Azure: a deployment name.
    ("azure", "gpt-4o/../../other"),
]


@pytest.mark.parametrize(("service", "model"), STRUCTURED)
def test_a_structured_name_outside_the_providers_own_is_refused(
    gateway: RunningGateway, recorder: PathRecorder, service: str, model: str
) -> None:
    before = len(recorder.targets)
    answer = _ask(gateway, service, model)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "model"
    assert model in answer.json()["error"]["message"]
    assert recorder.targets[before:] == []


ALLOWED = [
    ("gemini", "gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent?key="),
    ("gemini", "models/gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent?key="),
    ("gemini", "tunedModels/my-tune-7", "/v1beta/tunedModels/my-tune-7:generateContent?key="),
    (
        "vertex",
        "gemini-2.5-pro@001",
        f"/v1/{OWN}/publishers/google/models/gemini-2.5-pro@001:generateContent",
    ),
    (
        "vertex",
        "publishers/anthropic/models/claude-x",
        f"/v1/{OWN}/publishers/anthropic/models/claude-x:generateContent",
    ),
    ("vertex", f"{OWN}/endpoints/123", f"/v1/{OWN}/endpoints/123:generateContent"),
    (
        "vertex",
        f"{OWN}/publishers/google/models/gemini-2.0-flash",
        f"/v1/{OWN}/publishers/google/models/gemini-2.0-flash:generateContent",
    ),
    (
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
    ),
    (
        "bedrock",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x",
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-x"
        "/converse",
    ),
    ("azure", "gpt-4o", "/openai/deployments/gpt-4o/chat/completions?api-version="),
    ("gemini", "gemini pro é", "/v1beta/models/gemini%20pro%20%C3%A9:generateContent?key="),
]


@pytest.mark.parametrize(("service", "model", "target"), ALLOWED)
def test_documented_model_names_reach_their_paths_escaped(
    gateway: RunningGateway, recorder: PathRecorder, service: str, model: str, target: str
) -> None:
    before = len(recorder.targets)
    answer = _ask(gateway, service, model)
    assert answer.status_code == 404, answer.text  # the recorder's answer, passed on
    sent = recorder.targets[before:]
    assert len(sent) == 1 and sent[0].startswith(target), sent
