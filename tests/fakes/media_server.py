"""Fake media APIs, real HTTP servers speaking each provider's documented wire format.

``FakeOpenAIMedia``: OpenAI's (and Azure's, under ``/openai/deployments/{name}``)
``/images/generations``, ``/images/edits``, ``/audio/transcriptions`` (JSON, or
``stream=true`` events), ``/audio/speech`` (audio written in parts; the last part waits for
``release``) and ``/moderations``. Uploads are read part by part and only counted, never
held, and the time the first and last bytes arrived is kept.

``FakeRerank``: Cohere's ``/v2/rerank`` (bearer key), vLLM's ``/v1/rerank`` (the shape
Jina defined) and Hugging Face Text Embeddings Inference's ``/rerank`` (at the server's root:
``query`` and ``texts`` in, a bare list of ``{index, score}`` out, best first).

Special models: ``fail-<status>`` answers that status with OpenAI's error body.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
import zlib
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from tests.fakes.bedrock_server import Rejected, check_signature
from tests.fakes.server import FakeServer

OPENAI_KEY = "sk-fake-media-openai"
AZURE_KEY = "az-fake-media-key"
COHERE_KEY = "co-fake-rerank"
# The start of a PNG, enough for a client to see the bytes came through.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PNG_B64 = base64.b64encode(PNG).decode()
SPEECH_PARTS = [b"ID3" + bytes([i]) * 4093 for i in range(4)]


def token_usage(size: int) -> dict[str, Any]:
    """The usage gpt-4o-transcribe reports: input tokens split into audio and text (the
    prompt), and the transcript's output tokens."""
    audio = size // 1000
    return {
        "type": "tokens",
        "input_tokens": audio + 8,
        "input_token_details": {"text_tokens": 8, "audio_tokens": audio},
        "output_tokens": 3,
        "total_tokens": audio + 11,
    }


def error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status
    )


def rgba_png(width: int, height: int, clear: tuple[int, int, int, int]) -> bytes:
    """An RGBA PNG, opaque but for the box ``clear`` (x0, y0, x1, y1), fully transparent:
    the mask OpenAI's image edits take (transparent is what to change)."""
    rows = b""
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            inside = clear[0] <= x < clear[2] and clear[1] <= y < clear[3]
            row += b"\x00\x00\x00\x00" if inside else b"\x10\x20\x30\xff"
        rows += row

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x06\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class FakeOpenAIMedia(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()  # lets a speech answer finish
        self.speech_finished = False
        self.uploads: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{prefix:.*}images/generations", self.generations)
        app.router.add_post("/{prefix:.*}images/edits", self.edits)
        app.router.add_post("/{prefix:.*}images/variations", self.edits)
        app.router.add_post("/{prefix:.*}audio/transcriptions", self.transcriptions)
        app.router.add_post("/{prefix:.*}audio/translations", self.transcriptions)
        app.router.add_post("/{prefix:.*}audio/speech", self.speech)
        app.router.add_post("/{prefix:.*}moderations", self.moderations)

    def authorized(self, request: web.Request) -> bool:
        if request.path.startswith("/openai/"):
            return request.headers.get("api-key") == AZURE_KEY and bool(
                request.query.get("api-version")
            )
        return request.headers.get("authorization") == f"Bearer {OPENAI_KEY}"

    def refused(self, request: web.Request, model: str | None) -> web.Response | None:
        if not self.authorized(request):
            return error(401, "Incorrect API key provided.", "invalid_request_error")
        if model and model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            kind = "server_error" if status >= 500 else "invalid_request_error"
            return error(status, f"fake {status}", kind)
        return None

    def images(self, n: int, response_format: str | None) -> dict[str, Any]:
        one = (
            {"url": "https://files.example.com/img.png"}
            if response_format == "url"
            else {"b64_json": PNG_B64}
        )
        return {"created": int(time.time()), "data": [one] * n}

    async def generations(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        refused = self.refused(request, body.get("model"))
        if refused is not None:
            return refused
        if not body.get("prompt"):
            return error(400, "prompt is required")
        if body.get("stream"):
            return await self.image_events(request, body)
        return web.json_response(self.images(body.get("n") or 1, body.get("response_format")))

    async def image_events(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """gpt-image-1's stream: ``partial_images`` partial images, then the completed one
        with its usage."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        common = {"created_at": int(time.time()), "size": "1024x1024", "quality": "low"}
        common |= {"background": "opaque", "output_format": "png"}
        for index in range(body.get("partial_images") or 0):
            partial = {"type": "image_generation.partial_image", "b64_json": PNG_B64}
            partial |= {"partial_image_index": index, **common}
            await response.write(b"event: image_generation.partial_image\ndata: ")
            await response.write(orjson.dumps(partial) + b"\n\n")
        usage = {
            "input_tokens": 12,
            "output_tokens": 272,
            "total_tokens": 284,
            "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
        }
        done = {"type": "image_generation.completed", "b64_json": PNG_B64, "usage": usage}
        await response.write(b"event: image_generation.completed\ndata: ")
        await response.write(orjson.dumps({**done, **common}) + b"\n\n")
        await response.write_eof()
        return response

    async def form(self, request: web.Request) -> dict[str, Any]:
        """Read a multipart body part by part: plain fields kept, files only counted."""
        started = time.monotonic()
        fields: dict[str, str] = {}
        files: dict[str, int] = {}
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            assert isinstance(part, BodyPartReader)
            if part.filename is None:
                fields[part.name or ""] = (await part.read()).decode()
                continue
            size = 0
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
            files[part.name or ""] = size
        upload = {
            "path": request.path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "fields": fields,
            "files": files,
            "started": started,
            "ended": time.monotonic(),
        }
        self.uploads.append(upload)
        return upload

    async def edits(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return error(401, "Incorrect API key provided.")
        upload = await self.form(request)
        fields = upload["fields"]
        if "image" not in upload["files"] and "image[]" not in upload["files"]:
            return error(400, "image is required")
        return web.json_response(
            self.images(int(fields.get("n", 1)), fields.get("response_format"))
        )

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return error(401, "Incorrect API key provided.")
        upload = await self.form(request)
        fields, size = upload["fields"], upload["files"].get("file", 0)
        refused = self.refused(request, fields.get("model"))
        if refused is not None:
            return refused
        seconds = round(size / 32000, 3)  # 16 kHz, 16-bit mono
        text = f"heard {size} bytes"
        if fields.get("stream") == "true":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for word in text.split():
                delta = {"type": "transcript.text.delta", "delta": word + " "}
                await response.write(b"data: " + orjson.dumps(delta) + b"\n\n")
            done = {"type": "transcript.text.done", "text": text, "usage": token_usage(size)}
            await response.write(b"data: " + orjson.dumps(done) + b"\n\n")
            await response.write_eof()
            return response
        if fields.get("response_format") == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        if "transcribe" in (fields.get("model") or ""):  # gpt-4o(-mini)-transcribe: tokens
            return web.json_response({"text": text, "usage": token_usage(size)})
        return web.json_response({"text": text, "usage": {"type": "duration", "seconds": seconds}})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        refused = self.refused(request, body.get("model"))
        if refused is not None:
            return refused
        kind = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm"}.get(
            body.get("response_format") or "mp3", "audio/mpeg"
        )
        self.speech_finished = False
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)
        for part in SPEECH_PARTS[:-1]:
            await response.write(part)
        deadline = time.monotonic() + 60  # the test releases it sooner
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await response.write(SPEECH_PARTS[-1])
        await response.write_eof()
        self.speech_finished = True
        return response

    async def moderations(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        refused = self.refused(request, body.get("model"))
        if refused is not None:
            return refused
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for text in texts:
            flagged = "kill" in text
            results.append(
                {
                    "flagged": flagged,
                    "categories": {"violence": flagged, "harassment": False},
                    "category_scores": {"violence": 0.91 if flagged else 0.01, "harassment": 0.0},
                    "category_applied_input_types": {"violence": ["text"], "harassment": ["text"]},
                }
            )
        return web.json_response(
            {"id": f"modr-{uuid.uuid4().hex[:8]}", "model": body.get("model"), "results": results}
        )


def _score(query: str, document: str) -> float:
    """Shared words over the document's words: a stable, checkable relevance."""
    words = set(query.lower().split())
    doc = document.lower().split()
    return round(sum(w in words for w in doc) / max(len(doc), 1), 4)


class FakeRerank(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/rerank", self.cohere)
        app.router.add_post("/v1/rerank", self.vllm)
        app.router.add_post("/rerank", self.tei)

    def ranked(self, body: dict[str, Any], texts: list[str]) -> list[tuple[int, float]]:
        scored = [(i, _score(body["query"], text)) for i, text in enumerate(texts)]
        scored.sort(key=lambda pair: pair[1], reverse=True)
        return scored[: body.get("top_n") or None]

    async def cohere(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        if request.headers.get("authorization") != f"Bearer {COHERE_KEY}":
            return web.json_response({"id": "x", "message": "invalid api token"}, status=401)
        if not all(isinstance(d, str) for d in body.get("documents", [None])):
            return web.json_response(
                {"id": "x", "message": "documents must be strings"}, status=400
            )
        results = [
            {"index": i, "relevance_score": s} for i, s in self.ranked(body, body["documents"])
        ]
        return web.json_response(
            {
                "id": str(uuid.uuid4()),
                "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            }
        )

    async def vllm(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        docs = body["documents"]
        results = [
            {"index": i, "document": {"text": docs[i]}, "relevance_score": s}
            for i, s in self.ranked(body, docs)
        ]
        return web.json_response(
            {
                "id": f"rerank-{uuid.uuid4().hex}",
                "model": body["model"],
                "usage": {"total_tokens": sum(len(d.split()) for d in docs)},
                "results": results,
            }
        )

    async def tei(self, request: web.Request) -> web.Response:
        """TEI's body is strict: ``texts`` (strings) is required, unknown fields refused."""
        body = await self.record(request)
        known = {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"}
        texts = body.get("texts")
        if (
            set(body) - known
            or not isinstance(body.get("query"), str)
            or not isinstance(texts, list)
            or not all(isinstance(t, str) for t in texts)
        ):
            return web.json_response(
                {"error": "Failed to deserialize the JSON body", "error_type": "Validation"},
                status=422,
            )
        ranked = sorted(
            ((i, _score(body["query"], t)) for i, t in enumerate(texts)),
            key=lambda pair: pair[1],
            reverse=True,
        )
        answer: list[dict[str, Any]] = []
        for index, score in ranked:
            item: dict[str, Any] = {"index": index, "score": score}
            if body.get("return_text"):
                item["text"] = texts[index]
            answer.append(item)
        return web.json_response(answer)


class FakeSignedMedia(FakeServer):
    """An OpenAI-compatible transcription server behind SigV4 (as one hosted on AWS is),
    the signature checked with botocore over the exact bytes of the form."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{prefix:.*}audio/transcriptions", self.transcriptions)

    async def transcriptions(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            check_signature(request, raw)
        except Rejected as exc:
            return web.json_response({"message": exc.message}, status=exc.status)
        model = raw.split(b'name="model"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0].decode()
        return web.json_response({"text": f"signed {len(raw)} bytes for {model}"})
