"""Images on Bedrock (``InvokeModel``), to and from OpenAI's ``/v1/images/generations``,
``/edits`` and ``/variations``: Amazon Nova Canvas and Titan Image Generator share a body.

    {"taskType": "TEXT_IMAGE", "textToImageParams": {"text"},
     "imageGenerationConfig": {"numberOfImages", "width", "height", "quality"}}
    -> {"images": ["<base64 PNG>", ...], "error": null}

An edit with a mask is ``INPAINTING`` (``inPaintingParams``: the image, the prompt as
``text``, OpenAI's mask redrawn as Amazon's ``maskImage``, ``media.masks``); an edit
without one, or a variation, is ``IMAGE_VARIATION`` (``imageVariationParams``: the images,
and an edit's prompt as ``text``).

OpenAI's ``hd`` and ``high`` quality are Amazon's ``premium``, anything else ``standard``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from sluicegate.errors import InvalidRequest, UpstreamError
from sluicegate.media import images
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.masks import amazon_mask
from sluicegate.media.multipart import FormFile
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
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        width, height = images.size_of(body)
        images.format_of(body)
        n = body.get("n")
        count = images.count_of({"n": int(n)} if isinstance(n, str) and n.isdigit() else body)
        payload: dict[str, Any] = {
            "imageGenerationConfig": {
                "numberOfImages": count,
                "width": width,
                "height": height,
                "quality": "premium" if body.get("quality") in _PREMIUM else "standard",
            },
        }
        mask = images.mask_of(files) if endpoint.name == "images.edits" else None
        if endpoint.name == "images.generations":
            payload["taskType"] = "TEXT_IMAGE"
            payload["textToImageParams"] = {"text": images.prompt_of(body)}
        elif mask is not None:
            given = images.images_of(files)
            if len(given) > 1:
                raise InvalidRequest(
                    "Amazon's inpainting takes one image with a mask.", param="image"
                )
            payload["taskType"] = "INPAINTING"
            payload["inPaintingParams"] = {
                "image": images.b64(given[0].data),
                "text": images.prompt_of(body),
                "maskImage": images.b64(amazon_mask(mask.data)),
            }
            # Inpainting keeps the image's own size: it takes no width or height.
            config = payload["imageGenerationConfig"]
            del config["width"], config["height"]
        else:
            # An edit without a mask (the prompt says what changes) or a variation:
            # Amazon's IMAGE_VARIATION, guided by the prompt when there is one.
            params: dict[str, Any] = {
                "images": [images.b64(f.data) for f in images.images_of(files)]
            }
            if endpoint.name == "images.edits":
                params["text"] = images.prompt_of(body)
            payload["taskType"] = "IMAGE_VARIATION"
            payload["imageVariationParams"] = params
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
