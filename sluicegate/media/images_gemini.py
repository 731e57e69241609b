"""Image generation on Gemini and Vertex AI, to and from OpenAI's ``/v1/images/generations``.

Two kinds of model, told apart by name:

    imagen-*      ``{model}:predict``: {"instances": [{"prompt"}], "parameters": {"sampleCount",
                  "aspectRatio"}} -> {"predictions": [{"bytesBase64Encoded", "mimeType"}]}
    gemini-*      ``{model}:generateContent`` with ``responseModalities: ["IMAGE"]``; the
                  images are the answer's ``inlineData`` parts, its usage is in tokens

An edit on Imagen is Vertex AI's mask-based editing (``imagen-3.0-capability-*``,
``:predict`` with the image and OpenAI's mask redrawn as Imagen's as reference images,
``EDIT_MODE_INPAINT_INSERTION``); Gemini image models edit from the prompt alone and
take no mask.

Imagen takes an aspect ratio, not a size: the one nearest to the size asked for. Imagen
makes ``n`` images a call (``sampleCount``); Gemini image models refuse ``candidateCount``
above 1, so ``n`` images from them are ``n`` calls at once, their answers joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from sluicegate.errors import InvalidRequest, UpstreamError
from sluicegate.media import images
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.masks import google_mask
from sluicegate.media.multipart import FormFile
from sluicegate.providers.base import Adapter, UpstreamRequest
from sluicegate.providers.gemini import GeminiAdapter, VertexAdapter

_RATIOS = {"1:1": 1.0, "3:4": 3 / 4, "4:3": 4 / 3, "9:16": 9 / 16, "16:9": 16 / 9}
_JSON = {"content-type": "application/json", "accept": "application/json"}


def aspect_ratio(width: int, height: int) -> str:
    wanted = width / height
    return min(_RATIOS, key=lambda name: abs(_RATIOS[name] - wanted))


def imagen(model: str) -> bool:
    return "imagen" in model.rsplit("/", 1)[-1]


class GeminiImages(Wire):
    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        assert isinstance(adapter, GeminiAdapter)
        where = f"{base_url}/{adapter.model_path(model)}"
        prompt = images.prompt_of(body)
        n = images.count_of(_numbers(body))
        ratio = aspect_ratio(*images.size_of(body))
        images.format_of(body)  # refused now, not after the images were paid for
        if imagen(model):
            if endpoint.name == "images.edits":
                edit = _imagen_edit(adapter, prompt, n, files)
                return UpstreamRequest("POST", f"{where}:predict", dict(_JSON), edit)
            if endpoint.name != "images.generations":
                raise InvalidRequest(
                    f"'{model}' makes no variations; use a Bedrock image model.", param="model"
                )
            payload: dict[str, Any] = {
                "instances": [{"prompt": prompt}],
                "parameters": {"sampleCount": n, "aspectRatio": ratio},
            }
            return UpstreamRequest("POST", f"{where}:predict", dict(_JSON), orjson.dumps(payload))
        parts: list[dict[str, Any]] = []
        if endpoint.name == "images.edits":  # the images, then what to change in them
            images.no_mask(files, "Gemini image models")
            parts = [
                {"inlineData": {"mimeType": f.content_type, "data": images.b64(f.data)}}
                for f in images.images_of(files)
            ]
        parts.append({"text": prompt})
        config: dict[str, Any] = {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": ratio},
        }
        payload = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": config,
        }
        return UpstreamRequest(
            "POST", f"{where}:generateContent", dict(_JSON), orjson.dumps(payload)
        )

    def copies(self, endpoint: MediaEndpoint, body: dict[str, Any], model: str) -> int:
        return 1 if imagen(model) else images.count_of(_numbers(body))

    def join(self, answers: list[dict[str, Any]]) -> dict[str, Any]:
        return images.join(answers)

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        document = orjson.loads(data)
        found: list[tuple[str, str]] = []
        if imagen(model):
            for prediction in document.get("predictions") or []:
                b64 = prediction.get("bytesBase64Encoded")
                if isinstance(b64, str):
                    found.append((b64, prediction.get("mimeType") or "image/png"))
            if not found:
                raise UpstreamError("the provider generated no image (its safety filter?)")
            return images.answer(body, found)
        for candidate in document.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData")
                if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                    found.append((inline["data"], inline.get("mimeType") or "image/png"))
        if not found:
            raise UpstreamError("the provider generated no image (its safety filter?)")
        meta = document.get("usageMetadata") or {}
        usage = {
            "input_tokens": meta.get("promptTokenCount", 0),
            "output_tokens": meta.get("candidatesTokenCount", 0),
            "total_tokens": meta.get("totalTokenCount", 0),
        }
        return images.answer(body, found, usage)


def _imagen_edit(adapter: GeminiAdapter, prompt: str, n: int, files: Sequence[FormFile]) -> bytes:
    """Imagen's mask-based editing: the image and the mask as reference images."""
    if not isinstance(adapter, VertexAdapter):
        raise InvalidRequest(
            "Imagen edits images on Vertex AI only; the Gemini API's image models edit "
            "from the prompt (a Gemini image model, without a mask).",
            param="model",
            code="unsupported_parameter",
        )
    mask = images.mask_of(files)
    if mask is None:
        raise InvalidRequest(
            "Imagen edits what a mask marks: send one, or use a Gemini image model.",
            param="mask",
        )
    given = images.images_of(files)
    if len(given) > 1:
        raise InvalidRequest("Imagen edits one image with a mask.", param="image")
    raw = {
        "referenceType": "REFERENCE_TYPE_RAW",
        "referenceId": 1,
        "referenceImage": {"bytesBase64Encoded": images.b64(given[0].data)},
    }
    marked = {
        "referenceType": "REFERENCE_TYPE_MASK",
        "referenceId": 2,
        "referenceImage": {"bytesBase64Encoded": images.b64(google_mask(mask.data))},
        "maskImageConfig": {"maskMode": "MASK_MODE_USER_PROVIDED"},
    }
    return orjson.dumps(
        {
            "instances": [{"prompt": prompt, "referenceImages": [raw, marked]}],
            "parameters": {"editMode": "EDIT_MODE_INPAINT_INSERTION", "sampleCount": n},
        }
    )


def _numbers(body: dict[str, Any]) -> dict[str, Any]:
    """A form's ``n`` is text: read as the JSON body's number would be."""
    n = body.get("n")
    if isinstance(n, str) and n.isdigit():
        return {**body, "n": int(n)}
    return body
