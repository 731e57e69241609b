"""Hostile clients on the media and native routes: a form that says one thing to the gateway
and another to the provider, uploads that fail on purpose to eject a shared service, a
consumer of path rules shown every model, the gateway key in a pass-through query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.batch_server import OPENAI_KEY as FILES_KEY
from tests.fakes.batch_server import FakeBatches
from tests.fakes.gateway import RunningGateway
from tests.fakes.media_server import OPENAI_KEY, FakeOpenAIMedia
from tests.fakes.native_server import NATIVE_KEY, FakeNative

BOUNDARY = "attack-boundary-1"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def media() -> Iterator[FakeOpenAIMedia]:
    server = FakeOpenAIMedia().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def files() -> Iterator[FakeBatches]:
    server = FakeBatches().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def native() -> Iterator[FakeNative]:
    server = FakeNative().start()
    yield server
    server.stop()


def config(media: FakeOpenAIMedia, native: FakeNative, files: FakeBatches) -> dict[str, Any]:
    bearer = {"header_name": "Authorization", "header_value": f"Bearer {OPENAI_KEY}"}
    at = {"protocol": "http", "host": "127.0.0.1", "port": media.port, "retries": 0}
    guard = {"guardrails": {"pii": {"credit_card": "block", "email": "redact"}}}
    return {
        "gateway": {"max_body_bytes": 1024 * 1024},
        "services": [
            {"name": "oa", "provider": "openai", **at, "credentials": bearer},
            {
                "name": "bo",
                "provider": "openai",
                **at,
                "port": files.port,
                "credentials": {
                    "header_name": "Authorization",
                    "header_value": f"Bearer {FILES_KEY}",
                },
            },
            {
                "name": "gem",
                "provider": "gemini",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": native.port,
                "credentials": {"header_name": "x-goog-api-key", "header_value": NATIVE_KEY},
                "allow_gs_uris": True,
            },
        ],
        "rules": [
            {
                "name": "stt",
                "match": {"models": ["cheap-stt"]},
                "targets": [{"service": "oa", "model": "whisper-1"}],
                "policies": guard,
            },
            {
                "name": "speech",
                "match": {"models": ["tts-1"]},
                "targets": [{"service": "oa"}],
            },
            {"name": "files", "match": {"paths": ["/v1/files"]}, "targets": [{"service": "bo"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["stt", "speech"], "passthrough": ["gem"]},
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["files"]},
        ],
    }


@pytest.fixture(scope="module")
def gateway(
    media: FakeOpenAIMedia, native: FakeNative, files: FakeBatches
) -> Iterator[RunningGateway]:
    running = RunningGateway(config(media, native, files), keyless=False).start()
    yield running
    running.stop()


def form(*parts: tuple[str, str] | tuple[str, str, bytes]) -> bytes:
    out = b""
    for part in parts:
        name = part[0]
        if len(part) == 3:
            out += (
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
                    f'filename="{part[1]}"\r\nContent-Type: audio/wav\r\n\r\n'
                ).encode()
                + part[2]
                + b"\r\n"
            )
        else:
            disposition = f'Content-Disposition: form-data; name="{name}"'
            out += f"--{BOUNDARY}\r\n{disposition}\r\n\r\n{part[1]}\r\n".encode()
    return out + f"--{BOUNDARY}--\r\n".encode()


def transcribe(gateway: RunningGateway, body: bytes) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/audio/transcriptions",
        content=body,
        headers={
            "authorization": f"Bearer {KEY}",
            "content-type": f"multipart/form-data; boundary={BOUNDARY}",
        },
        timeout=20,
    )


@pytest.mark.parametrize(
    "body",
    [
        # A second model: the provider's parser may take the first.
        form(("model", "gpt-4o-transcribe"), ("model", "cheap-stt"), ("file", "a.wav", b"\0" * 64)),
        # A second prompt, the first one carrying what the guardrails block.
        form(
            ("model", "cheap-stt"),
            ("prompt", f"card {CARD}"),
            ("prompt", "hello"),
            ("file", "a.wav", b"\0" * 64),
        ),
        # A plain field after the file, where the gateway stops reading the head.
        form(
            ("model", "cheap-stt"),
            ("file", "a.wav", b"\0" * 64),
            ("prompt", f"card {CARD}"),
        ),
        form(("model", "cheap-stt"), ("file", "a.wav", b"\0" * 64), ("model", "gpt-4o-x")),
    ],
    ids=["two-models", "two-prompts", "prompt-after-file", "model-after-file"],
)
def test_a_form_cannot_say_one_thing_to_the_gateway_and_another_to_the_provider(
    gateway: RunningGateway, media: FakeOpenAIMedia, body: bytes
) -> None:
    before = len(media.uploads)
    answer = transcribe(gateway, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert len(media.uploads) == before  # no upload completed at the provider


def test_array_fields_may_repeat_their_words(gateway: RunningGateway) -> None:
    body = form(
        ("model", "cheap-stt"),
        ("timestamp_granularities[]", "word"),
        ("timestamp_granularities[]", "segment"),
        ("file", "a.wav", b"\0" * 64),
    )
    assert transcribe(gateway, body).status_code == 200


def test_failing_uploads_on_purpose_do_not_eject_a_shared_service(
    gateway: RunningGateway, media: FakeOpenAIMedia
) -> None:
    media.release.set()  # the fake speaks its answer whole
    too_big = form(("model", "cheap-stt"), ("file", "a.wav", b"\0" * (2 * 1024 * 1024)))

    def chunks() -> Iterator[bytes]:  # no length: the limit is found while it streams
        for at in range(0, len(too_big), 64 * 1024):
            yield too_big[at : at + 64 * 1024]

    for _ in range(8):
        refused = httpx.post(
            gateway.url + "/v1/audio/transcriptions",
            content=chunks(),
            headers={
                "authorization": f"Bearer {KEY}",
                "content-type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            timeout=20,
        )
        assert refused.status_code == 413, refused.text
    victim = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    with victim.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input="still here"
    ) as spoken:
        assert spoken.status_code == 200
        assert spoken.read()


def test_failing_file_uploads_do_not_eject_a_shared_service(gateway: RunningGateway) -> None:
    big = b"\0" * (2 * 1024 * 1024)

    def chunks() -> Iterator[bytes]:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"'
            "\r\n\r\n"
        ).encode()
        yield head
        for at in range(0, len(big), 64 * 1024):
            yield big[at : at + 64 * 1024]

    for _ in range(8):
        refused = httpx.post(
            gateway.url + "/v1/files",
            content=chunks(),
            headers={
                "authorization": f"Bearer {OTHER_KEY}",
                "content-type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            timeout=20,
        )
        assert refused.status_code == 413, refused.text
    victim = openai.OpenAI(base_url=gateway.url + "/v1", api_key=OTHER_KEY, max_retries=0)
    assert victim.files.create(file=("in.jsonl", b"{}\n"), purpose="batch").id


def test_a_consumer_of_path_rules_is_not_shown_every_model(gateway: RunningGateway) -> None:
    listed = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {OTHER_KEY}"})
    assert listed.status_code == 200
    assert listed.json()["data"] == []


def test_requests_are_counted_by_endpoint(gateway: RunningGateway) -> None:
    body = form(("model", "cheap-stt"), ("file", "a.wav", b"\0" * 64))
    assert transcribe(gateway, body).status_code == 200
    scraped = httpx.get(gateway.url + "/metrics").text
    assert any(
        line.startswith("sluicegate_requests_total{") and 'endpoint="audio.transcriptions"' in line
        for line in scraped.splitlines()
    )


def test_the_gateway_key_in_a_pass_through_query_stays_at_the_gateway(
    gateway: RunningGateway, native: FakeNative
) -> None:
    answer = httpx.get(
        gateway.url + f"/passthrough/gem/models?key={KEY}&pageSize=5",
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 200, answer.text
    seen = native.seen[-1]
    assert KEY not in seen["raw_path"]
    assert seen["query"] == {"pageSize": "5"}
