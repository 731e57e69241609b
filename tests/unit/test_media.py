"""The media request path's sans-IO parts: the form head reader, the translators, prices."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import httpx
import orjson
import pytest

from sluicegate.errors import InvalidRequest, UpstreamError
from sluicegate.media.base import ENDPOINTS
from sluicegate.media.images_bedrock import BedrockImages
from sluicegate.media.images_gemini import GeminiImages, aspect_ratio
from sluicegate.media.masks import alpha_rows, amazon_mask, google_mask
from sluicegate.media.multipart import FormHead, boundary_of, read_form
from sluicegate.media.openai import OpenAIWire
from sluicegate.media.prices import MediaPrice, MediaPrices
from sluicegate.media.rerank import BedrockRerank, CompatibleRerank, TeiRerank, scores_of
from sluicegate.media.usage import MediaUnits, StreamEvents, cost, from_answer
from sluicegate.media.wires import wire_for
from sluicegate.providers.anthropic import AnthropicAdapter
from sluicegate.providers.azure import AzureAdapter
from sluicegate.providers.bedrock import BedrockAdapter
from sluicegate.providers.cohere import CohereAdapter
from sluicegate.providers.gemini import GeminiAdapter, VertexAdapter
from sluicegate.providers.openai import OpenAIAdapter
from sluicegate.telemetry.pricing import PriceTable


def form(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A multipart body as httpx (and so the openai SDK) writes it: fields, then files."""
    request = httpx.Request(
        "POST",
        "http://x/",
        data=fields,
        files={name: (f"{name}.bin", data) for name, data in files.items()},
    )
    return request.headers["content-type"].encode(), request.read()


def fed(head: FormHead, body: bytes, size: int) -> int:
    """Feed ``body`` in parts of ``size``; how many bytes were fed when the head was done."""
    fed = 0
    for start in range(0, len(body), size):
        fed += len(body[start : start + size])
        if head.feed(body[start : start + size]):
            return fed
    return fed


@pytest.mark.parametrize("size", [1, 7, 100, 65536])
def test_the_form_head_stops_at_the_first_file_after_model(size: int) -> None:
    content_type, body = form({"model": "whisper-1", "language": "de"}, {"file": b"A" * 200_000})
    head = FormHead(boundary_of(content_type))
    took = fed(head, body, size)
    assert head.done and not head.ended
    assert head.fields == {"model": "whisper-1", "language": "de"}
    assert took < 1000 + size  # the file was not read
    rest = body[took:]
    assert head.head() + rest == body
    renamed = head.head({"model": "whisper-large"}) + rest
    parsed = httpx.Request("POST", "http://x/", content=renamed).read()
    assert b'name="model"\r\n\r\nwhisper-large\r\n' in parsed
    assert len(renamed) == len(body) + len("whisper-large") - len("whisper-1")


def test_a_model_after_the_files_is_found_by_reading_past_them() -> None:
    request = httpx.Request(
        "POST",
        "http://x/",
        files=[("image", ("a.png", b"\x89PNG" * 100)), ("model", (None, b"dall-e-2"))],
    )
    body = request.read()
    head = FormHead(boundary_of(request.headers["content-type"].encode()))
    fed(head, body, 64)
    assert head.model == "dall-e-2"
    assert head.files == ["image"]
    assert head.done and head.ended


def test_a_body_that_is_no_form_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        boundary_of(b"application/json")
    with pytest.raises(InvalidRequest):
        boundary_of(b"multipart/form-data")


def test_wires_follow_the_adapter_class() -> None:
    images, edits = ENDPOINTS["/v1/images/generations"], ENDPOINTS["/v1/images/edits"]
    rerank, moderations = ENDPOINTS["/v1/rerank"], ENDPOINTS["/v1/moderations"]
    assert isinstance(wire_for(OpenAIAdapter("openai"), edits), OpenAIWire)
    assert isinstance(wire_for(AzureAdapter(), images), OpenAIWire)
    assert wire_for(AzureAdapter(), moderations) is None
    assert isinstance(wire_for(VertexAdapter("p"), images), GeminiImages)
    assert isinstance(wire_for(GeminiAdapter(), edits), GeminiImages)
    assert wire_for(GeminiAdapter(), ENDPOINTS["/v1/images/variations"]) is None
    assert isinstance(wire_for(BedrockAdapter(), edits), BedrockImages)
    assert wire_for(OpenAIAdapter("openai"), rerank) is None  # OpenAI has no rerank
    assert isinstance(wire_for(OpenAIAdapter("openai-compatible"), rerank), CompatibleRerank)
    assert isinstance(wire_for(OpenAIAdapter("tei"), rerank), TeiRerank)
    assert isinstance(wire_for(BedrockAdapter(), rerank), BedrockRerank)
    assert wire_for(CohereAdapter(), rerank) is not None
    assert wire_for(AnthropicAdapter(), images) is None


def test_azure_puts_the_deployment_in_the_path() -> None:
    wire = OpenAIWire()
    body = {"model": "x", "prompt": "p"}
    sent = wire.request(
        AzureAdapter("2025-04-01-preview"),
        ENDPOINTS["/v1/images/generations"],
        body,
        orjson.dumps(body),
        "img-deploy",
        "https://r.openai.azure.com/openai",
    )
    assert sent.url == (
        "https://r.openai.azure.com/openai/deployments/img-deploy/images/generations"
        "?api-version=2025-04-01-preview"
    )
    assert orjson.loads(sent.body)["model"] == "img-deploy"
    with pytest.raises(InvalidRequest):
        wire.request(AzureAdapter(), ENDPOINTS["/v1/images/generations"], body, b"", "../x", "")


@pytest.mark.parametrize(
    ("size", "ratio"),
    [((1024, 1024), "1:1"), ((1792, 1024), "16:9"), ((1024, 1536), "3:4"), ((1536, 1024), "4:3")],
)
def test_imagen_takes_the_nearest_aspect_ratio(size: tuple[int, int], ratio: str) -> None:
    assert aspect_ratio(*size) == ratio


def test_gemini_image_models_use_generate_content() -> None:
    wire, endpoint = GeminiImages(), ENDPOINTS["/v1/images/generations"]
    body = {"prompt": "a cat", "response_format": "url"}
    sent = wire.request(
        GeminiAdapter(), endpoint, body, b"", "gemini-2.5-flash-image", "https://g/v1beta"
    )
    assert sent.url == "https://g/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert orjson.loads(sent.body)["generationConfig"]["responseModalities"] == ["IMAGE"]
    png = base64.b64encode(b"png").decode()
    answer = {
        "candidates": [
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": png}}]}}
        ],
        "usageMetadata": {
            "promptTokenCount": 4,
            "candidatesTokenCount": 1290,
            "totalTokenCount": 1294,
        },
    }
    out = wire.answer(endpoint, orjson.dumps(answer), body, "gemini-2.5-flash-image")
    assert out["data"] == [{"url": f"data:image/png;base64,{png}"}]
    assert out["usage"]["output_tokens"] == 1290
    with pytest.raises(UpstreamError):
        wire.answer(endpoint, b'{"candidates": []}', body, "gemini-2.5-flash-image")


def test_n_images_are_sample_count_on_imagen_and_n_calls_on_gemini_image_models() -> None:
    wire, endpoint = GeminiImages(), ENDPOINTS["/v1/images/generations"]
    body = {"prompt": "a cat", "n": 3}
    sent = wire.request(GeminiAdapter(), endpoint, body, b"", "gemini-2.5-flash-image", "")
    assert "candidateCount" not in orjson.loads(sent.body)["generationConfig"]
    assert wire.copies(endpoint, body, "gemini-2.5-flash-image") == 3
    assert wire.copies(endpoint, {**body, "n": "2"}, "gemini-2.5-flash-image") == 2  # a form's
    sent = wire.request(GeminiAdapter(), endpoint, body, b"", "imagen-4.0-generate-001", "")
    assert orjson.loads(sent.body)["parameters"]["sampleCount"] == 3
    assert wire.copies(endpoint, body, "imagen-4.0-generate-001") == 1
    one = {"created": 1, "data": [{"b64_json": "a"}], "usage": {"output_tokens": 5}}
    two = {"created": 2, "data": [{"b64_json": "b"}], "usage": {"output_tokens": 7}}
    joined = wire.join([one, two])
    assert joined["data"] == [{"b64_json": "a"}, {"b64_json": "b"}]
    assert joined["usage"]["output_tokens"] == 12


def test_bedrock_images_refuse_what_openai_would() -> None:
    wire, endpoint = BedrockImages(), ENDPOINTS["/v1/images/generations"]
    for bad, param in (
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "n": 11}, "n"),
        ({"prompt": "x", "size": "big"}, "size"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            wire.request(BedrockAdapter(), endpoint, bad, b"", "amazon.nova-canvas-v1:0", "")
        assert refused.value.param == param


def test_rerank_answers_in_every_shape_become_cohere_s() -> None:
    assert scores_of([{"index": 1, "score": 0.5}, {"index": 0, "score": 0.9}]) == [
        (1, 0.5),
        (0, 0.9),
    ]
    assert scores_of({"data": [{"index": 0, "relevance_score": 0.3}]}) == [(0, 0.3)]
    assert scores_of({"results": [{"index": 2, "relevanceScore": 0.1}]}) == [(2, 0.1)]
    body: dict[str, Any] = {
        "query": "q",
        "documents": ["a", "b", "c"],
        "top_n": 2,
        "return_documents": True,
    }
    tei = orjson.dumps(
        [{"index": 0, "score": 0.1}, {"index": 2, "score": 0.8}, {"index": 1, "score": 0.5}]
    )
    out = CompatibleRerank().answer(ENDPOINTS["/v1/rerank"], tei, body, "m")
    assert [(r["index"], r["document"]["text"]) for r in out["results"]] == [(2, "c"), (1, "b")]
    out = TeiRerank().answer(ENDPOINTS["/v1/rerank"], tei, body, "m")
    assert [r["index"] for r in out["results"]] == [2, 1]


def test_tei_rerank_takes_its_own_body_at_the_server_root() -> None:
    body = {"query": "q", "documents": ["a", {"text": "b"}], "top_n": 1}
    adapter = OpenAIAdapter("tei")
    sent = TeiRerank().request(adapter, ENDPOINTS["/v1/rerank"], body, b"", "m", "http://t/v1")
    assert sent.url == "http://t/rerank"
    assert orjson.loads(sent.body) == {"query": "q", "texts": ["a", "b"], "truncate": True}
    with pytest.raises(InvalidRequest) as refused:
        TeiRerank().request(adapter, ENDPOINTS["/v1/rerank"], {**body, "top_n": 0}, b"", "m", "")
    assert refused.value.param == "top_n"


def test_prices_by_quality_and_size_and_units() -> None:
    media, tokens = MediaPrices(), PriceTable()
    request = {"quality": "hd", "size": "1792x1024"}
    assert cost(media, tokens, "dall-e-3", MediaUnits(images=2), request) == pytest.approx(0.24)
    assert cost(media, tokens, "dall-e-3", MediaUnits(images=1), {}) == pytest.approx(0.04)
    assert cost(media, tokens, "tts-1", MediaUnits(characters=1000), {}) == pytest.approx(0.015)
    assert cost(media, tokens, "whisper-1", MediaUnits(seconds=60), {}) == pytest.approx(0.006)
    assert cost(media, tokens, "omni-moderation-latest", MediaUnits(), {}) == 0.0
    assert cost(media, tokens, "unknown-model", MediaUnits(images=1), {}) is None
    custom = MediaPrices({"my-sd": MediaPrice(image=0.002)})
    assert cost(custom, tokens, "my-sd", MediaUnits(images=3), {}) == pytest.approx(0.006)


def test_transcript_usage_from_answers_and_events() -> None:
    units = from_answer(
        "transcripts", {}, {"text": "hi", "usage": {"type": "duration", "seconds": 7}}
    )
    assert units.seconds == 7
    verbose = from_answer("transcripts", {}, {"text": "hi", "duration": 3.5})
    assert verbose.seconds == 3.5
    streamed = MediaUnits()
    events = StreamEvents(streamed)
    done = {
        "type": "transcript.text.done",
        "text": "x",
        "usage": {"input_tokens": 9, "output_tokens": 2},
    }
    payload = (
        b'data: {"type":"transcript.text.delta","delta":"x"}\n\ndata: '
        + orjson.dumps(done)
        + b"\n\n"
    )
    for i in range(0, len(payload), 5):
        events.feed(payload[i : i + 5])
    assert streamed.tokens is not None and (streamed.tokens.input, streamed.tokens.output) == (9, 2)


def test_token_priced_transcription_prices_audio_tokens_apart() -> None:
    usage = {
        "type": "tokens",
        "input_tokens": 120,
        "input_token_details": {"text_tokens": 20, "audio_tokens": 100},
        "output_tokens": 40,
        "total_tokens": 160,
    }
    units = from_answer("transcripts", {}, {"text": "hi", "usage": usage})
    assert units.tokens is not None and units.tokens.audio == 100
    media, tokens = MediaPrices(), PriceTable()
    got = cost(media, tokens, "gpt-4o-transcribe", units, {})
    assert got == pytest.approx((100 * 6 + 20 * 2.5 + 40 * 10) / 1e6)
    got = cost(media, tokens, "gpt-4o-mini-transcribe-2025-03-20", units, {})
    assert got == pytest.approx((100 * 3 + 20 * 1.25 + 40 * 5) / 1e6)
    # A model that reports seconds keeps its price per second.
    seconds = MediaUnits(seconds=60)
    assert cost(media, tokens, "gpt-4o-transcribe", seconds, {}) == pytest.approx(0.006)


def test_a_whole_form_keeps_its_files() -> None:
    request = httpx.Request(
        "POST",
        "http://x/",
        data={"model": "m", "prompt": "p"},
        files=[
            ("image[]", ("a.png", b"A" * 10, "image/png")),
            ("image[]", ("b.webp", b"B", "image/webp")),
        ],
    )
    form = read_form(boundary_of(request.headers["content-type"].encode()), request.read())
    assert form.fields == {"model": "m", "prompt": "p"}
    assert [(f.name, f.filename, f.content_type, f.data) for f in form.uploads] == [
        ("image[]", "a.png", "image/png", b"A" * 10),
        ("image[]", "b.webp", "image/webp", b"B"),
    ]
    with pytest.raises(InvalidRequest):
        read_form(boundary_of(request.headers["content-type"].encode()), request.read()[:-10])


_COLUMNS = {  # the endpoint table's provider columns, and an adapter of each
    "OpenAI": OpenAIAdapter("openai"),
    "Azure": AzureAdapter(),
    "Anthropic": AnthropicAdapter(),
    "Bedrock": BedrockAdapter(),
    "Gemini, Vertex": GeminiAdapter(),
    "Cohere": CohereAdapter(),
    "OpenAI-compatible": OpenAIAdapter("openai-compatible"),
}


def test_the_endpoint_table_in_the_docs_says_what_the_wires_serve() -> None:
    """docs/endpoints.md's rows for the media endpoints, checked against ``wire_for``."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "endpoints.md").read_text()
    table = text[text.index("| endpoint | OpenAI |") :]
    lines = table[: table.index("\n\n")].splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    checked = 0
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        path = cells[0].split("`")[1].removeprefix("POST ")
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            continue  # not a media endpoint
        for column, cell in zip(header[1:-1], cells[1:-1], strict=True):
            served = wire_for(_COLUMNS[column], endpoint) is not None
            assert served == cell.startswith("✓"), (path, column, cell)
        checked += 1
    assert checked == 7


def _filtered_png(colour: int, pixels: list[list[bytes]], extra: bytes = b"") -> bytes:
    """A PNG whose rows use every filter in turn (row y: filter y % 5), written with the
    filters' definitions, to check the mask reader undoes each one."""
    bpp = len(pixels[0][0])
    previous = bytes(len(pixels[0]) * bpp)
    out = b""
    for y, line in enumerate(pixels):
        raw = b"".join(line)
        kind = y % 5
        row = bytearray()
        for i, x in enumerate(raw):
            left = raw[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
            paeth = left if a <= b and a <= c else up if b <= c else corner
            predicted = [0, left, up, (left + up) // 2, paeth][kind]
            row.append((x - predicted) & 255)
        out += bytes([kind]) + bytes(row)
        previous = raw

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    width, height = len(pixels[0]), len(pixels)
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(out))
        + chunk(b"IEND", b"")
    )


def test_the_mask_reader_undoes_every_png_filter_and_colour_type() -> None:
    width, height = 7, 10
    alpha = [
        [(x * 37 + y * 11) % 256 if (x + y) % 3 else 0 for x in range(width)] for y in range(height)
    ]
    rgba = [
        [bytes([x * 30, y * 20, (x ^ y) * 9, alpha[y][x]]) for x in range(width)]
        for y in range(height)
    ]
    grey = [[bytes([(x * y) % 256, alpha[y][x]]) for x in range(width)] for y in range(height)]
    expected = [bytes(row) for row in alpha]
    for colour, pixels in ((6, rgba), (4, grey)):
        got_width, got_height, rows = alpha_rows(_filtered_png(colour, pixels))
        assert (got_width, got_height, rows) == (width, height, expected), colour
    # A palette: index 0 transparent by its tRNS entry, the rest opaque.
    trns = len(b"\x00").to_bytes(4, "big") + b"tRNS" + b"\x00"
    trns += zlib.crc32(b"tRNS\x00").to_bytes(4, "big")
    indexed = [
        [bytes([0 if alpha[y][x] == 0 else 1 + x]) for x in range(width)] for y in range(height)
    ]
    _, _, rows = alpha_rows(_filtered_png(3, indexed, trns))
    assert rows == [bytes(0 if a == 0 else 255 for a in row) for row in alpha]

    drawn = amazon_mask(_filtered_png(6, rgba))
    raw = zlib.decompress(drawn[drawn.index(b"IDAT") + 4 : drawn.index(b"IEND") - 8])
    stride = 1 + 3 * width
    for y in range(height):
        line = raw[y * stride + 1 : (y + 1) * stride]
        assert line == b"".join(b"\x00" * 3 if a == 0 else b"\xff" * 3 for a in alpha[y])
    drawn = google_mask(_filtered_png(6, rgba))  # Imagen's: white is what changes
    raw = zlib.decompress(drawn[drawn.index(b"IDAT") + 4 : drawn.index(b"IEND") - 8])
    for y in range(height):
        line = raw[y * stride + 1 : (y + 1) * stride]
        assert line == b"".join(b"\xff" * 3 if a == 0 else b"\x00" * 3 for a in alpha[y])


def test_a_mask_without_alpha_is_refused_with_its_param() -> None:
    rgb = _filtered_png(2, [[b"\x01\x02\x03"] * 4] * 4)
    for bad in (rgb, b"not a png", _filtered_png(6, [[b"\x00\x00\x00\x00"] * 4] * 4)[:-30]):
        with pytest.raises(InvalidRequest) as refused:
            amazon_mask(bad)
        assert refused.value.param == "mask"
