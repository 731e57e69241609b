"""Image generation on Bedrock (``InvokeModel``), to and from OpenAI's
``/v1/images/generations``: Amazon Nova Canvas and Titan Image Generator share a body.

    {"taskType": "TEXT_IMAGE", "textToImageParams": {"text"},
     "imageGenerationConfig": {"numberOfImages", "width", "height", "quality"}}
    -> {"images": ["<base64 PNG>", ...], "error": null}

OpenAI's ``hd`` and ``high`` quality are Amazon's ``premium``, anything else ``standard``.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import UpstreamError
from sluicegate.media import images
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.providers.base import Adapter, UpstreamRequest
from sluicegate.providers.bedrock import model_segment

_PREMIUM = frozenset({"hd", "high"})


class BedrockImages(Wire):
    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
    ) -> UpstreamRequest:
        width, height = images.size_of(body)
        images.format_of(body)
        payload = {
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {"text": images.prompt_of(body)},
            "imageGenerationConfig": {
                "numberOfImages": images.count_of(body),
                "width": width,
                "height": height,
                "quality": "premium" if body.get("quality") in _PREMIUM else "standard",
            },
        }
        url = f"{base_url}/model/{model_segment(model)}/invoke"
        headers = {"content-type": "application/json", "accept": "application/json"}
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        document = orjson.loads(data)
        if document.get("error"):
            raise UpstreamError(f"the provider generated no image: {document['error']}")
        found = [(b64, "image/png") for b64 in document.get("images") or [] if isinstance(b64, str)]
        if not found:
            raise UpstreamError("the provider generated no image")
        return images.answer(body, found)
