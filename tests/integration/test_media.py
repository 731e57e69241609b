"""Images, audio, rerank and moderations through a running gateway, with the official
``openai`` SDK (and plain HTTP for rerank) against fake providers that speak each one's wire
format: routed by model through rules, refused by allow lists, falling back, priced, and
written to the audit log with their endpoint's name."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import KEY, OTHER_KEY, logged_row, settled
from tests.fakes.bedrock_server import ACCESS_KEY, REGION, SECRET_KEY, FakeBedrock
from tests.fakes.gateway import RunningGateway, free_port, serve_process
from tests.fakes.gemini_server import (
    GEMINI_KEY,
    PROJECT,
    FakeGemini,
    FakeVertex,
    service_account_json,
)
from tests.fakes.media_server import (
    AZURE_KEY,
    COHERE_KEY,
    OPENAI_KEY,
    PNG,
    SPEECH_PARTS,
    FakeOpenAIMedia,
    FakeRerank,
    FakeSignedMedia,
    rgba_png,
)
from tests.integration.test_cli import wait_ready

ADMIN_KEY = "adm-media-key-0001"
BUDGET_KEY = "sk-test-team-c-0003"
DOCS = [
    "Paris is the capital of France",
    "the cat sat on the mat",
    "France has a capital city called Paris and it is big",
]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    servers: dict[str, Any] = {
        "openai": FakeOpenAIMedia().start(),
        "rerank": FakeRerank().start(),
        "gemini": FakeGemini().start(),
        "bedrock": FakeBedrock().start(),
        "vertex": FakeVertex().start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


def local(server: Any) -> dict[str, Any]:
    return {"protocol": "http", "host": "127.0.0.1", "port": server.port, "retries": 0}


def config(fakes: dict[str, Any], store: str) -> dict[str, Any]:
    bearer = {"header_name": "Authorization", "header_value": f"Bearer {OPENAI_KEY}"}
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": store},
        "services": [
            {"name": "oa", "provider": "openai", **local(fakes["openai"]), "credentials": bearer},
            {
                "name": "az",
                "provider": "azure",
                **local(fakes["openai"]),
                "path": "/openai",
                "credentials": {"header_name": "api-key", "header_value": AZURE_KEY},
            },
            {
                "name": "google",
                "provider": "gemini",
                **local(fakes["gemini"]),
                "credentials": {"header_name": "x-goog-api-key", "header_value": GEMINI_KEY},
            },
            {
                "name": "vx",
                "provider": "vertex",
                **local(fakes["vertex"]),
                "project": PROJECT,
                "location": "europe-west4",
                "credentials": {
                    "gcp_service_account_json": service_account_json(fakes["vertex"].token_uri)
                },
            },
            {
                "name": "aws",
                "provider": "bedrock",
                **local(fakes["bedrock"]),
                "credentials": {
                    "aws_access_key_id": ACCESS_KEY,
                    "aws_secret_access_key": SECRET_KEY,
                    "aws_region": REGION,
                },
            },
            {
                "name": "cohere",
                "provider": "cohere",
                **local(fakes["rerank"]),
                "credentials": {
                    "header_name": "Authorization",
                    "header_value": f"Bearer {COHERE_KEY}",
                },
            },
            {"name": "vllm", "provider": "openai-compatible", **local(fakes["rerank"])},
            {"name": "tei", "provider": "tei", **local(fakes["rerank"])},
            {"name": "demo", "provider": "mock"},
            {
                "name": "dead",
                "provider": "openai",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": free_port(),  # nothing listens there
                "retries": 0,
            },
        ],
        "rules": [
            {
                "name": "draw",
                "match": {"models": ["draw"]},
                "targets": [{"service": "oa", "model": "dall-e-3"}],
                "routes": [
                    {
                        "when": {"headers": {"x-tier": "cheap"}},
                        "targets": [{"service": "google", "model": "imagen-4.0-fast-generate-001"}],
                    }
                ],
            },
            {
                "name": "draw-safe",  # the first step fails; its fallback answers
                "match": {"models": ["draw-safe"]},
                "targets": [{"service": "oa", "model": "fail-503"}],
                "fallbacks": [
                    {"service": "demo"},  # serves no images: passed over
                    {"service": "google", "model": "imagen-4.0-generate-001"},
                ],
            },
            {
                "name": "imagen",
                "match": {"models": ["imagen-*"]},
                "targets": [{"service": "google"}],
            },
            {
                "name": "canvas",
                "match": {"models": ["amazon.nova-canvas-v1:0"]},
                "targets": [{"service": "aws"}],
            },
            {
                "name": "gemini-edit",
                "match": {"models": ["gemini-edit"]},
                "targets": [{"service": "google", "model": "gemini-2.5-flash-image"}],
            },
            {
                "name": "inpaint",
                "match": {"models": ["inpaint"]},
                "targets": [{"service": "vx", "model": "imagen-3.0-capability-001"}],
            },
            {
                "name": "masked",  # Gemini takes no mask: passed over for Bedrock
                "match": {"models": ["masked"]},
                "targets": [{"service": "google", "model": "gemini-2.5-flash-image"}],
                "fallbacks": [{"service": "aws", "model": "amazon.nova-canvas-v1:0"}],
            },
            {
                "name": "nano",
                "match": {"models": ["nano"]},
                "targets": [{"service": "google", "model": "gemini-2.5-flash-image"}],
            },
            {
                "name": "edit-fallback",  # Gemini fails after the upload was read whole
                "match": {"models": ["edit-fallback"]},
                "targets": [{"service": "google", "model": "fail-500"}],
                "fallbacks": [{"service": "aws", "model": "amazon.nova-canvas-v1:0"}],
            },
            {
                "name": "edit",
                "match": {"models": ["gpt-image-1", "dall-e-2"]},
                "targets": [{"service": "oa"}],
            },
            {
                "name": "azure-edit",
                "match": {"models": ["az-image"]},
                "targets": [{"service": "az", "model": "image-deploy"}],
            },
            {
                "name": "audio",
                "match": {
                    "models": ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "tts-1"]
                },
                "targets": [{"service": "oa"}],
            },
            {
                "name": "guarded",  # guardrails on the text the client sends
                "match": {"models": ["guarded-draw", "guarded-stt"]},
                "targets": [{"service": "oa"}],
                "policies": {"guardrails": {"pii": {"email": "redact", "credit_card": "block"}}},
            },
            {
                "name": "stt-safe",  # the first service cannot be reached: nothing was sent
                "match": {"models": ["stt-safe"]},
                "targets": [{"service": "dead", "model": "whisper-1"}],
                "fallbacks": [{"service": "oa", "model": "whisper-1"}],
            },
            {
                "name": "stt-sent",  # the first service failed once it had the upload
                "match": {"models": ["stt-sent"]},
                "targets": [{"service": "oa", "model": "fail-500"}],
                "fallbacks": [{"service": "oa", "model": "whisper-1"}],
            },
            {
                "name": "moderate",
                "match": {"models": ["omni-moderation-latest"]},
                "targets": [{"service": "oa"}],
            },
            {
                "name": "rerank",
                "match": {"models": ["rerank-v3.5"]},
                "targets": [{"service": "cohere"}],
            },
            {
                "name": "rerank-local",
                "match": {"models": ["bge-reranker"]},
                "targets": [{"service": "vllm", "model": "BAAI/bge-reranker-v2-m3"}],
            },
            {
                "name": "rerank-tei",
                "match": {"models": ["tei-reranker"]},
                "targets": [{"service": "tei", "model": "BAAI/bge-reranker-base"}],
            },
            {
                "name": "rerank-aws",
                "match": {"models": ["cohere.rerank-v3-5:0"]},
                "targets": [{"service": "aws"}],
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY]},
            {"name": "team-b", "keys": [OTHER_KEY], "rules": ["moderate"]},
            {
                "name": "team-c",
                "keys": [BUDGET_KEY],
                "rules": ["draw"],
                "budget": {"usd": 0.05, "window": "1h"},
                "limits": {"requests": 100, "window": "1m"},
            },
        ],
        "pricing": {"bge-reranker-v2-m3": {"search": 0.0005}},
    }


@pytest.fixture(scope="module")
def gateway(
    fakes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = f"sqlite:///{tmp_path_factory.mktemp('media') / 'sluicegate.db'}"
    running = RunningGateway(config(fakes, store), keyless=False).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def admin(gateway: RunningGateway) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as http:
        yield http


def test_images_generate_on_openai_renames_the_model_and_prices_each_image(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    raw = client(gateway).images.with_raw_response.generate(
        model="draw",
        prompt="a lighthouse at dusk",
        n=2,
        size="1024x1024",
        quality="hd",
        response_format="b64_json",
        extra_headers={"x-request-id": "img-native"},
    )
    images = raw.parse()
    assert [base64.b64decode(d.b64_json or "") for d in images.data or []] == [PNG, PNG]
    assert raw.headers["x-sluicegate-service"] == "oa"
    sent = fakes["openai"].last
    assert sent["path"] == "/v1/images/generations"
    assert sent["body"]["model"] == "dall-e-3"  # the rule's target model
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"  # never the client's key
    row = logged_row(admin, "img-native", 10)
    assert row["endpoint"] == "images.generations"
    assert (row["rule"], row["service"], row["status"]) == ("draw", "oa", 200)
    assert row["cost_usd"] == pytest.approx(2 * 0.08)  # dall-e-3, hd, 1024x1024

    cheap = client(gateway).images.with_raw_response.generate(
        model="draw", prompt="a lighthouse", extra_headers={"x-tier": "cheap"}
    )
    assert cheap.headers["x-sluicegate-service"] == "google"  # the rule's route for the header
    assert cheap.headers["x-sluicegate-route"]
    assert fakes["gemini"].last["path"] == "/v1beta/models/imagen-4.0-fast-generate-001:predict"


def test_images_generate_translated_to_imagen_after_a_fallback(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    raw = client(gateway).images.with_raw_response.generate(
        model="draw-safe",
        prompt="a red bicycle",
        n=2,
        size="1792x1024",
        extra_headers={"x-request-id": "img-imagen"},
    )
    images = raw.parse()
    assert raw.headers["x-sluicegate-service"] == "google"
    assert raw.headers["x-sluicegate-attempts"] == "2"  # oa failed, demo skipped, google
    data = images.data or []
    assert len(data) == 2
    assert base64.b64decode(data[0].b64_json or "") == b"\x89PNG imagen 16:9"
    sent = fakes["gemini"].last
    assert sent["path"] == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert sent["body"] == {
        "instances": [{"prompt": "a red bicycle"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "16:9"},
    }
    row = logged_row(admin, "img-imagen", 10)
    assert (row["endpoint"], row["service"], row["attempts"]) == ("images.generations", "google", 2)
    assert row["cost_usd"] == pytest.approx(2 * 0.04)


def test_several_images_from_a_gemini_image_model(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    """Gemini image models refuse candidateCount above 1 (Imagen's count is sampleCount):
    n images are n requests, their images and tokens joined in one answer."""
    before = len(fakes["gemini"].requests)
    raw = client(gateway).images.with_raw_response.generate(
        model="nano", prompt="a kite", n=3, extra_headers={"x-request-id": "img-nano"}
    )
    data = raw.parse().data or []
    assert [base64.b64decode(d.b64_json or "") for d in data] == [b"\x89PNG gemini 0 a kite"] * 3
    sent = fakes["gemini"].requests[before:]
    assert len(sent) == 3
    for one in sent:
        assert one["path"] == "/v1beta/models/gemini-2.5-flash-image:generateContent"
        assert "candidateCount" not in one["body"]["generationConfig"]
    row = logged_row(admin, "img-nano", 10)
    assert (row["status"], row["output_tokens"]) == (200, 3 * 1290)
    assert row["cost_usd"] == pytest.approx(3 * 0.039)


def test_images_generate_on_bedrock_nova_canvas_as_data_urls(
    gateway: RunningGateway, fakes: dict[str, Any]
) -> None:
    images = client(gateway).images.generate(
        model="amazon.nova-canvas-v1:0",
        prompt="a quiet harbour",
        size="1024x1024",
        quality="hd",
        response_format="url",
    )
    data = images.data or []
    assert len(data) == 1
    url = data[0].url or ""
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.partition(",")[2]) == b"\x89PNG canvas 1024x1024"
    sent = fakes["bedrock"].last
    assert sent["path"] == "/model/amazon.nova-canvas-v1:0/invoke"
    assert sent["body"]["imageGenerationConfig"]["quality"] == "premium"
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256")


def test_images_edit_streams_the_upload_to_openai_and_azure(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    picture = PNG + b"\x01" * 300_000
    images = client(gateway).images.edit(
        model="gpt-image-1",
        image=("in.png", picture, "image/png"),
        prompt="add a hat",
        n=1,
        size="1024x1024",
        quality="low",
        extra_headers={"x-request-id": "img-edit"},
    )
    assert base64.b64decode((images.data or [])[0].b64_json or "") == PNG
    upload = fakes["openai"].uploads[-1]
    assert upload["path"] == "/v1/images/edits"
    assert upload["files"] == {"image": len(picture)}
    assert upload["fields"]["prompt"] == "add a hat"
    assert upload["fields"]["model"] == "gpt-image-1"
    row = logged_row(admin, "img-edit", 10)
    assert (row["endpoint"], row["status"]) == ("images.edits", 200)
    assert row["cost_usd"] == pytest.approx(0.011)

    variations = client(gateway).images.create_variation(
        model="dall-e-2", image=("in.png", picture, "image/png"), n=2, size="512x512"
    )
    assert len(variations.data or []) == 2
    assert fakes["openai"].uploads[-1]["path"] == "/v1/images/variations"

    client(gateway).images.edit(
        model="az-image", image=("in.png", picture, "image/png"), prompt="add a scarf"
    )
    upload = fakes["openai"].uploads[-1]
    assert upload["path"] == "/openai/deployments/image-deploy/images/edits"
    assert upload["fields"]["model"] == "image-deploy"  # renamed in the form's head
    assert upload["files"] == {"image": len(picture)}


def test_audio_transcription_json_and_stream(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    audio = b"RIFF" + b"\x00" * 64_000
    sdk = client(gateway)
    raw = sdk.audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("call.wav", audio, "audio/wav"),
        extra_headers={"x-request-id": "stt-json"},
    )
    assert raw.parse().text == f"heard {len(audio)} bytes"
    row = logged_row(admin, "stt-json", 10)
    assert row["endpoint"] == "audio.transcriptions"
    seconds = round(len(audio) / 32000, 3)
    assert row["cost_usd"] == pytest.approx(seconds * 0.006 / 60)

    events = list(
        sdk.audio.transcriptions.create(
            model="gpt-4o-transcribe",
            file=("call.wav", audio, "audio/wav"),
            stream=True,
            extra_headers={"x-request-id": "stt-stream"},
        )
    )
    kinds = [event.type for event in events]
    assert kinds[-1] == "transcript.text.done"
    assert kinds.count("transcript.text.delta") == 3
    # Token-priced: audio input, text input (the prompt) and output tokens each at their
    # price (OpenAI's: $6, $2.50 and $10 per million).
    audio_tokens = len(audio) // 1000
    row = logged_row(admin, "stt-stream", 10)
    assert (row["input_tokens"], row["output_tokens"]) == (audio_tokens + 8, 3)
    assert row["cost_usd"] == pytest.approx((audio_tokens * 6 + 8 * 2.5 + 3 * 10) / 1e6)

    mini = sdk.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-mini-transcribe",
        file=("call.wav", audio, "audio/wav"),
        extra_headers={"x-request-id": "stt-tokens"},
    )
    assert mini.parse().text == f"heard {len(audio)} bytes"
    row = logged_row(admin, "stt-tokens", 10)
    assert (row["input_tokens"], row["output_tokens"]) == (audio_tokens + 8, 3)
    assert row["cost_usd"] == pytest.approx((audio_tokens * 3 + 8 * 1.25 + 3 * 5) / 1e6)

    translated = sdk.audio.translations.with_raw_response.create(
        model="whisper-1",
        file=("call.wav", audio, "audio/wav"),
        extra_headers={"x-request-id": "stt-translate"},
    )
    assert translated.parse().text == f"heard {len(audio)} bytes"
    assert fakes["openai"].uploads[-1]["path"] == "/v1/audio/translations"
    assert logged_row(admin, "stt-translate", 10)["endpoint"] == "audio.translations"


def test_speech_streams_audio_before_the_provider_has_finished(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    fake: FakeOpenAIMedia = fakes["openai"]
    fake.release.clear()
    text = "Hello from the gateway."
    with client(gateway).audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="alloy",
        input=text,
        response_format="mp3",
        extra_headers={"x-request-id": "tts"},
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        chunks = response.iter_bytes()
        first = next(chunks)
        assert first.startswith(b"ID3")
        assert not fake.speech_finished  # the provider is still holding its last part
        fake.release.set()
        rest = b"".join(chunks)
    assert first + rest == b"".join(SPEECH_PARTS)
    row = logged_row(admin, "tts", 10)
    assert (row["endpoint"], row["status"]) == ("audio.speech", 200)
    assert row["cost_usd"] == pytest.approx(len(text) * 15 / 1_000_000)


def test_moderations_create_and_allow_lists(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    result = client(gateway, OTHER_KEY).moderations.create(
        input=["I will kill the process", "hello"], extra_headers={"x-request-id": "mod"}
    )
    assert [r.flagged for r in result.results] == [True, False]
    assert fakes["openai"].last["body"]["model"] == "omni-moderation-latest"
    row = logged_row(admin, "mod", 10)
    assert (row["endpoint"], row["consumer"], row["cost_usd"]) == ("moderations", "team-b", 0.0)
    # team-b may use the moderation rule only
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(gateway, OTHER_KEY).images.generate(model="draw", prompt="x")
    assert refused.value.body["code"] == "rule_not_allowed"  # type: ignore[index]


def rerank(gateway: RunningGateway, body: dict[str, Any], rid: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/rerank",
        json=body,
        headers={"authorization": f"Bearer {KEY}", "x-request-id": rid},
    )


def test_rerank_to_cohere_in_its_own_shape(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    answer = rerank(
        gateway,
        {"model": "rerank-v3.5", "query": "capital of France", "documents": DOCS, "top_n": 2},
        "rr-cohere",
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 2]
    assert answer.json()["meta"]["billed_units"] == {"search_units": 1}
    assert fakes["rerank"].last["path"] == "/v2/rerank"
    row = logged_row(admin, "rr-cohere", 10)
    assert (row["endpoint"], row["cost_usd"]) == ("rerank", pytest.approx(0.002))


def test_rerank_to_an_openai_compatible_server_and_bedrock(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    docs = [{"text": d} for d in DOCS]  # Cohere's v1 objects are sent on as strings
    body = {"model": "bge-reranker", "query": "capital of France", "documents": docs}
    answer = rerank(gateway, {**body, "return_documents": True}, "rr-vllm")
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 2, 1]
    assert results[0]["document"] == {"text": DOCS[0]}
    assert results[0]["relevance_score"] > results[1]["relevance_score"]
    sent = fakes["rerank"].last
    assert (sent["path"], sent["body"]["model"]) == ("/v1/rerank", "BAAI/bge-reranker-v2-m3")
    assert sent["body"]["documents"] == DOCS
    row = logged_row(admin, "rr-vllm", 10)
    assert row["cost_usd"] == pytest.approx(0.0005)

    answer = rerank(
        gateway,
        {
            "model": "cohere.rerank-v3-5:0",
            "query": "capital of France",
            "documents": DOCS,
            "top_n": 1,
        },
        "rr-aws",
    )
    assert answer.status_code == 200, answer.text
    assert [r["index"] for r in answer.json()["results"]] == [0]
    assert fakes["bedrock"].last["body"]["api_version"] == 2


def test_rerank_to_a_text_embeddings_inference_server(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    """TEI's own /rerank at the server's root: query and texts in, a bare list of
    {index, score} out; the client still sends and gets Cohere's shape."""
    body = {
        "model": "tei-reranker",
        "query": "capital of France",
        "documents": [DOCS[0], {"text": DOCS[1]}, DOCS[2]],
        "top_n": 2,
        "return_documents": True,
    }
    answer = rerank(gateway, body, "rr-tei")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-sluicegate-service"] == "tei"
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 2]  # cut to top_n by the gateway
    assert results[0]["relevance_score"] > results[1]["relevance_score"] > 0
    assert results[1]["document"] == {"text": DOCS[2]}
    sent = fakes["rerank"].last
    assert sent["path"] == "/rerank"
    assert sent["body"] == {"query": "capital of France", "texts": DOCS, "truncate": True}
    row = logged_row(admin, "rr-tei", 10)
    assert (row["endpoint"], row["service"], row["status"]) == ("rerank", "tei", 200)

    bad = rerank(gateway, {"model": "tei-reranker", "query": "q", "documents": [1]}, "rr-tei-bad")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "documents"


def test_media_errors_keep_the_shape(gateway: RunningGateway) -> None:
    answer = rerank(gateway, {"model": "rerank-v3.5", "query": "q"}, "rr-bad")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] is None or answer.json()["error"]["type"]
    assert answer.json()["error"]["type"] == "invalid_request_error"
    missing = rerank(gateway, {"model": "nope", "query": "q", "documents": ["a"]}, "rr-404")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    wrong = httpx.get(
        gateway.url + "/v1/images/generations", headers={"authorization": f"Bearer {KEY}"}
    )
    assert wrong.status_code == 405


def test_models_lists_the_media_models(gateway: RunningGateway) -> None:
    listed = {m.id for m in client(gateway).models.list()}
    assert {"draw", "whisper-1", "tts-1", "omni-moderation-latest", "rerank-v3.5"} <= listed
    assert {m.id for m in client(gateway, OTHER_KEY).models.list()} == {"omni-moderation-latest"}


def test_an_upload_over_max_body_bytes_is_a_413(gateway: RunningGateway) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        client(gateway).audio.transcriptions.create(
            model="whisper-1", file=("big.wav", b"\x00" * (11 * 1024 * 1024), "audio/wav")
        )
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "request_too_large"  # type: ignore[index]


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_twenty_megabyte_transcription_is_streamed_not_held(
    fakes: dict[str, Any], tmp_path: Path
) -> None:
    """The gateway in a process of its own, whose peak memory shows what the upload made it
    hold: less than the file."""
    port = free_port()
    bearer = {"header_name": "Authorization", "header_value": f"Bearer {OPENAI_KEY}"}
    document = {
        "gateway": {"listen": f"127.0.0.1:{port}", "max_body_bytes": 32 * 1024 * 1024},
        "services": [
            {"name": "oa", "provider": "openai", **local(fakes["openai"]), "credentials": bearer}
        ],
        "rules": [
            {"name": "audio", "match": {"models": ["whisper-1"]}, "targets": [{"service": "oa"}]}
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
    }
    proc = serve_process(tmp_path, document)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        sdk = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        warm = sdk.audio.transcriptions.create(
            model="whisper-1", file=("small.wav", b"RIFF" + b"\x00" * 1000, "audio/wav")
        )
        assert warm.text == "heard 1004 bytes"
        before = _peak_rss(proc.pid)
        size = 20 * 1024 * 1024
        big = sdk.audio.transcriptions.create(
            model="whisper-1", file=("call.wav", b"RIFF" + b"\x01" * (size - 4), "audio/wav")
        )
        grown = _peak_rss(proc.pid) - before
        assert big.text == f"heard {size} bytes"
        assert fakes["openai"].uploads[-1]["files"] == {"file": size}
        assert grown < size // 2, f"the gateway held {grown} bytes more at its peak"
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_cost_of_images_counts_against_the_budget(gateway: RunningGateway) -> None:
    sdk = client(gateway, BUDGET_KEY)
    first = settled(
        gateway.url,
        lambda: sdk.images.with_raw_response.generate(model="draw", prompt="one", quality="hd"),
    )
    assert first.headers["x-ratelimit-limit-requests"] == "100"
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.images.generate(model="draw", prompt="two")  # $0.08 spent of $0.05
    assert refused.value.body["code"] == "budget_exceeded"  # type: ignore[index]


def test_an_upload_falls_back_only_while_none_of_it_was_sent(
    gateway: RunningGateway, fakes: dict[str, Any]
) -> None:
    audio = ("call.wav", b"RIFF" + b"\x02" * 50_000, "audio/wav")
    sdk = client(gateway)
    raw = sdk.audio.transcriptions.with_raw_response.create(model="stt-safe", file=audio)
    assert raw.headers["x-sluicegate-service"] == "oa"
    assert raw.headers["x-sluicegate-attempts"] == "2"
    assert raw.parse().text == "heard 50004 bytes"
    uploads = len(fakes["openai"].uploads)
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.audio.transcriptions.with_raw_response.create(model="stt-sent", file=audio)
    assert failed.value.status_code == 502
    assert failed.value.response.headers["x-sluicegate-attempts"] == "1"
    assert len(fakes["openai"].uploads) == uploads + 1  # sent once, never replayed


def test_guardrails_screen_what_media_requests_send(
    gateway: RunningGateway, fakes: dict[str, Any]
) -> None:
    sdk = client(gateway)
    sdk.images.generate(model="guarded-draw", prompt="a card for jane@example.com")
    assert fakes["openai"].last["body"]["prompt"] == "a card for [EMAIL_1]"
    sdk.audio.transcriptions.create(
        model="guarded-stt",
        file=("call.wav", b"RIFF" + b"\x00" * 5000, "audio/wav"),
        prompt="names: jane@example.com",
    )
    upload = fakes["openai"].uploads[-1]
    assert upload["fields"]["prompt"] == "names: [EMAIL_1]"
    assert upload["files"] == {"file": 5004}
    with pytest.raises(openai.BadRequestError) as blocked:
        sdk.images.generate(model="guarded-draw", prompt="card 4111 1111 1111 1111")
    assert blocked.value.body["code"] == "content_blocked"  # type: ignore[index]


def test_image_edits_and_variations_translated_to_gemini_and_bedrock(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    sdk = client(gateway)
    picture = PNG + b"\x05" * 10_000
    edited = sdk.images.with_raw_response.edit(
        model="gemini-edit",
        image=("in.png", picture, "image/png"),
        prompt="add a hat",
        extra_headers={"x-request-id": "edit-gemini"},
    )
    data = edited.parse().data or []
    assert base64.b64decode(data[0].b64_json or "") == b"\x89PNG gemini 1 add a hat"
    sent = fakes["gemini"].last
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    inline = sent["body"]["contents"][0]["parts"][0]["inlineData"]
    assert (inline["mimeType"], base64.b64decode(inline["data"])) == ("image/png", picture)
    row = logged_row(admin, "edit-gemini", 10)
    assert (row["endpoint"], row["output_tokens"]) == ("images.edits", 1290)
    assert row["cost_usd"] == pytest.approx(0.039)

    # Read whole for Gemini (which failed), the same upload then goes to Bedrock.
    raw = sdk.images.with_raw_response.edit(
        model="edit-fallback", image=("in.png", picture, "image/png"), prompt="in winter", n=2
    )
    assert raw.headers["x-sluicegate-service"] == "aws"
    assert raw.headers["x-sluicegate-attempts"] == "2"
    data = raw.parse().data or []
    assert [base64.b64decode(d.b64_json or "") for d in data] == [
        b"\x89PNG variation 1 in winter"
    ] * 2
    params = fakes["bedrock"].last["body"]["imageVariationParams"]
    assert base64.b64decode(params["images"][0]) == picture

    variation = sdk.images.create_variation(
        model="amazon.nova-canvas-v1:0", image=("in.png", picture, "image/png")
    )
    assert base64.b64decode((variation.data or [])[0].b64_json or "") == b"\x89PNG variation 1 "
    assert "text" not in fakes["bedrock"].last["body"]["imageVariationParams"]

    with pytest.raises(openai.BadRequestError) as masked:
        sdk.images.edit(
            model="gemini-edit",
            image=("in.png", picture, "image/png"),
            mask=("mask.png", PNG, "image/png"),
            prompt="x",
        )
    assert masked.value.body["param"] == "mask"  # type: ignore[index]


def test_a_masked_edit_is_inpainting_on_bedrock_and_refused_by_gemini(
    gateway: RunningGateway, fakes: dict[str, Any], admin: httpx.Client
) -> None:
    """OpenAI's mask (transparent: change this) becomes Amazon's INPAINTING maskImage
    (black: change this, white: keep); Gemini's image models take no mask."""
    sdk = client(gateway)
    picture = rgba_png(64, 48, (0, 0, 0, 0))  # opaque
    mask = rgba_png(64, 48, (8, 4, 24, 14))  # a 16 x 10 box to change
    raw = sdk.images.with_raw_response.edit(
        model="amazon.nova-canvas-v1:0",
        image=("in.png", picture, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a red door",
        n=2,
        extra_headers={"x-request-id": "edit-inpaint"},
    )
    data = raw.parse().data or []
    assert [base64.b64decode(d.b64_json or "") for d in data] == [
        b"\x89PNG inpainted 160 a red door"
    ] * 2
    body = fakes["bedrock"].last["body"]
    assert body["taskType"] == "INPAINTING"
    assert base64.b64decode(body["inPaintingParams"]["image"]) == picture
    assert body["imageGenerationConfig"]["numberOfImages"] == 2
    row = logged_row(admin, "edit-inpaint", 10)
    assert (row["endpoint"], row["service"], row["status"]) == ("images.edits", "aws", 200)
    assert row["cost_usd"] == pytest.approx(2 * 0.04)

    with pytest.raises(openai.BadRequestError) as unmaskable:
        sdk.images.edit(
            model="amazon.nova-canvas-v1:0",
            image=("in.png", picture, "image/png"),
            mask=("mask.png", PNG, "image/png"),  # no alpha channel to read
            prompt="x",
        )
    assert unmaskable.value.body["param"] == "mask"  # type: ignore[index]

    # Imagen's editing models on Vertex AI take a mask too: white is what changes.
    raw = sdk.images.with_raw_response.edit(
        model="inpaint",
        image=("in.png", picture, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a red door",
        n=2,
        extra_headers={"x-request-id": "edit-imagen"},
    )
    data = raw.parse().data or []
    assert [base64.b64decode(d.b64_json or "") for d in data] == [
        b"\x89PNG imagen edit 160 a red door"
    ] * 2
    sent = fakes["vertex"].last
    assert sent["path"].endswith("/publishers/google/models/imagen-3.0-capability-001:predict")
    raw_reference = sent["body"]["instances"][0]["referenceImages"][0]
    assert base64.b64decode(raw_reference["referenceImage"]["bytesBase64Encoded"]) == picture
    assert sent["body"]["parameters"] == {
        "editMode": "EDIT_MODE_INPAINT_INSERTION",
        "sampleCount": 2,
    }
    with pytest.raises(openai.BadRequestError) as unmasked:
        sdk.images.edit(model="inpaint", image=("in.png", picture, "image/png"), prompt="x")
    assert unmasked.value.body["param"] == "mask"  # type: ignore[index]

    # A step whose provider takes no mask is passed over, as one that lacks the endpoint.
    before = len(fakes["gemini"].requests)
    passed = sdk.images.with_raw_response.edit(
        model="masked",
        image=("in.png", picture, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a blue door",
    )
    assert passed.headers["x-sluicegate-service"] == "aws"
    data = passed.parse().data or []
    assert base64.b64decode(data[0].b64_json or "") == b"\x89PNG inpainted 160 a blue door"
    assert len(fakes["gemini"].requests) == before

    with pytest.raises(openai.BadRequestError) as imagen_api:  # Imagen edits: Vertex AI only
        sdk.images.edit(
            model="imagen-3.0-capability-001",
            image=("in.png", picture, "image/png"),
            mask=("mask.png", mask, "image/png"),
            prompt="a red door",
        )
    assert "'google'" in imagen_api.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.images.edit(
            model="gemini-edit",
            image=("in.png", picture, "image/png"),
            mask=("mask.png", mask, "image/png"),
            prompt="a red door",
        )
    error: dict[str, Any] = refused.value.body  # type: ignore[assignment]
    assert error["param"] == "mask"
    assert "'google'" in error["message"]  # names the service that takes no mask
    assert len(fakes["gemini"].requests) == before  # nothing was sent


def test_a_sigv4_service_gets_the_form_signed_whole(tmp_path: Path) -> None:
    fake = FakeSignedMedia().start()
    config = {
        "services": [
            {
                "name": "aws-stt",
                "provider": "openai-compatible",
                **local(fake),
                "credentials": {
                    "aws_access_key_id": ACCESS_KEY,
                    "aws_secret_access_key": SECRET_KEY,
                    "aws_region": REGION,
                },
            }
        ],
        "rules": [
            {
                "name": "stt",
                "match": {"models": ["stt"]},
                "targets": [{"service": "aws-stt", "model": "whisper-large-v3"}],
            }
        ],
    }
    running = RunningGateway(config).start()
    try:
        sdk = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0)
        text = sdk.audio.transcriptions.create(
            model="stt", file=("call.wav", b"RIFF" + b"\x03" * 20_000, "audio/wav")
        ).text
        assert text.startswith("signed ") and text.endswith(" bytes for whisper-large-v3")
    finally:
        running.stop()
        fake.stop()


def test_images_generate_streamed_partial_images(
    gateway: RunningGateway, admin: httpx.Client
) -> None:
    events = list(
        client(gateway).images.generate(
            model="gpt-image-1",
            prompt="a fox",
            stream=True,
            partial_images=2,
            quality="low",
            extra_headers={"x-request-id": "img-stream"},
        )
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    row = logged_row(admin, "img-stream", 10)
    assert (row["endpoint"], row["output_tokens"]) == ("images.generations", 272)
    assert row["cost_usd"] == pytest.approx(0.011)  # one low-quality 1024x1024 image
