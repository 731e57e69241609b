"""The native routes (``/passthrough/{service}/…`` and Anthropic's message batches) hold a
service to what its modelled routes hold it to: a service behind guardrails is not opened
around them, a Vertex service stays in its project and location, gs:// URIs and
``anthropic-beta`` names pass only where the service allows them, and a batch's requests
are screened as the same requests sent one by one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.batch_server import ANTHROPIC_KEY, FakeBatches
from tests.fakes.gateway import RunningGateway
from tests.fakes.native_server import NATIVE_KEY, FakeNative

PROJECT, LOCATION = "own-project", "europe-west4"
OWN = f"/passthrough/vtx/projects/{PROJECT}/locations/{LOCATION}"
EMAIL = "jane.doe@example.com"
REDACT = {"guardrails": {"pii": "redact"}}


@pytest.fixture(scope="module")
def native() -> Iterator[FakeNative]:
    server = FakeNative().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def batches() -> Iterator[FakeBatches]:
    server = FakeBatches().start()
    yield server
    server.stop()


def config(native: FakeNative, batches: FakeBatches) -> dict[str, Any]:
    at_native = {"protocol": "http", "host": "127.0.0.1", "port": native.port}
    return {
        "services": [
            {
                "name": "gem",
                "provider": "gemini",
                **at_native,
                "credentials": {"header_name": "x-goog-api-key", "header_value": NATIVE_KEY},
            },
            {
                "name": "vtx",
                "provider": "vertex",
                **at_native,
                "project": PROJECT,
                "location": LOCATION,
                "credentials": {"header_name": "x-goog-api-key", "header_value": NATIVE_KEY},
            },
            {
                "name": "ant",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": batches.port,
                "credentials": {"header_name": "x-api-key", "header_value": ANTHROPIC_KEY},
            },
        ],
        "rules": [
            {
                "name": "gemini",
                "match": {"models": ["gem-x"]},
                "targets": [{"service": "gem"}],
                "policies": REDACT,
            },
            {"name": "vertex", "match": {"models": ["vtx-x"]}, "targets": [{"service": "vtx"}]},
            {
                "name": "claude",
                "match": {"models": ["claude-x"]},
                "targets": [{"service": "ant", "model": "claude-real"}],
                "policies": REDACT,
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["gemini", "vertex", "claude"]},
            # Granted the native routes by name, screening or not.
            {"name": "team-b", "keys": [OTHER_KEY], "rules": [], "passthrough": ["gem", "ant"]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(native: FakeNative, batches: FakeBatches) -> Iterator[RunningGateway]:
    running = RunningGateway(config(native, batches), keyless=False).start()
    yield running
    running.stop()


def _native(
    gateway: RunningGateway, key: str, path: str, body: bytes = b"", **headers: str
) -> httpx.Response:
    return httpx.post(
        gateway.url + path,
        content=body,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json", **headers},
        timeout=10,
    )


def _generate(text: str, uri: str | None = None) -> bytes:
    parts: list[dict[str, Any]] = [{"text": text}]
    if uri is not None:
        parts.append({"fileData": {"mimeType": "image/png", "fileUri": uri}})
    return orjson.dumps({"contents": [{"role": "user", "parts": parts}]})


def test_a_service_behind_guardrails_is_not_opened_by_pass_through(
    gateway: RunningGateway, native: FakeNative
) -> None:
    before = len(native.seen)
    body = _generate(f"write to {EMAIL}")
    refused = _native(gateway, KEY, "/passthrough/gem/models/g:generateContent", body)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "service_not_allowed"
    assert "gemini" in error["message"] and "passthrough" in error["message"]
    assert len(native.seen) == before  # nothing reached the provider
    granted = _native(gateway, OTHER_KEY, "/passthrough/gem/models/g:generateContent", body)
    assert granted.status_code == 200, granted.text
    assert native.seen[-1]["body"] == body  # an explicit grant: untouched


def test_vertex_pass_through_stays_in_the_services_project_and_location(
    gateway: RunningGateway, native: FakeNative
) -> None:
    before = len(native.seen)
    for path in (
        f"/passthrough/vtx/projects/other-project/locations/{LOCATION}/endpoints/1:predict",
        f"/passthrough/vtx/projects/{PROJECT}/locations/us-central1/endpoints/1:predict",
        f"/passthrough/vtx/projects/{PROJECT}/locations/{LOCATION}x/endpoints/1:predict",
        "/passthrough/vtx/publishers/google/models/gemini-2.0-flash:generateContent",
        f"/passthrough/vtx/projects/%6Fther/locations/{LOCATION}/endpoints/1:predict",
    ):
        answer = _native(gateway, KEY, path, _generate("hi"))
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "invalid_path"
        assert f"projects/{PROJECT}/locations/{LOCATION}" in answer.json()["error"]["message"]
    assert len(native.seen) == before
    own = _native(
        gateway, KEY, OWN + "/publishers/google/models/m:generateContent", _generate("hi")
    )
    assert own.status_code == 200, own.text
    assert native.seen[-1]["path"] == (
        f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/m:generateContent"
    )


@pytest.mark.parametrize(
    "body",
    [
        _generate("look", "gs://their-bucket/secret.png"),
        _generate("look", "  GS://their-bucket/secret.png"),
        # The same URI with JSON escapes that Google's parser decodes.
        _generate("look", "gs://x").replace(b"gs://x", b"gs:\\/\\/their-bucket/secret.png"),
        _generate("look", "gs://x").replace(b"gs://x", b"\\u0067s://their-bucket/secret.png"),
    ],
)
def test_gs_uris_pass_only_where_the_service_allows_them(
    gateway: RunningGateway, native: FakeNative, body: bytes
) -> None:
    before = len(native.seen)
    for key, path in (
        (OTHER_KEY, "/passthrough/gem/models/g:generateContent"),
        (KEY, OWN + "/publishers/google/models/m:generateContent"),
    ):
        answer = _native(gateway, key, path, body)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "gs_uris_not_allowed"
    assert len(native.seen) == before


def test_anthropic_betas_on_pass_through_are_those_the_service_lists(
    gateway: RunningGateway, batches: FakeBatches
) -> None:
    answer = _native(
        gateway,
        OTHER_KEY,
        "/passthrough/ant/messages/batches",
        orjson.dumps({"requests": []}),
        **{"anthropic-beta": "files-api-2025-04-14", "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code < 500, answer.text
    sent = batches.seen[-1]["headers"]
    assert sent["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in sent  # the service lists no betas


def test_a_message_batch_is_screened_like_its_requests(
    gateway: RunningGateway, batches: FakeBatches
) -> None:
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    requests = [
        {
            "custom_id": "m0",
            "params": {
                "model": "claude-x",
                "max_tokens": 16,
                "metadata": {"user_id": EMAIL},
                "messages": [{"role": "user", "content": f"mail {EMAIL} please"}],
            },
        }
    ]
    sdk.messages.batches.create(
        requests=requests,  # type: ignore[arg-type]
        extra_headers={"anthropic-beta": "files-api-2025-04-14"},
    )
    sent = batches.seen[-1]
    assert EMAIL.encode() not in orjson.dumps(sent["body"])
    params = sent["body"]["requests"][0]["params"]
    assert params["model"] == "claude-real"
    assert "[EMAIL" in params["messages"][0]["content"]
    assert "anthropic-beta" not in sent["headers"]
