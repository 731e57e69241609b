"""OpenAI's image request and answer, for the providers that are translated to and from it.

``size`` is ``WIDTHxHEIGHT`` (or ``auto``: 1024x1024); ``n`` 1 to 10. Providers answer with
base64 images only: ``response_format: b64_json`` (the default here, as for gpt-image-1)
gives them as they are, ``url`` as ``data:`` URLs, since the gateway hosts no files.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any

from sluicegate.errors import InvalidRequest
from sluicegate.media.multipart import FormFile

_DEFAULT_SIZE = (1024, 1024)


def prompt_of(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequest("prompt must be a non-empty string.", param="prompt")
    return prompt


def count_of(body: dict[str, Any]) -> int:
    n = body.get("n", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        raise InvalidRequest("n must be an integer from 1 to 10.", param="n")
    return n


def size_of(body: dict[str, Any]) -> tuple[int, int]:
    size = body.get("size")
    if size is None or size == "auto":
        return _DEFAULT_SIZE
    width, sep, height = str(size).partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise InvalidRequest("size must be WIDTHxHEIGHT, e.g. 1024x1024, or auto.", param="size")
    return int(width), int(height)


def format_of(body: dict[str, Any]) -> str:
    chosen = body.get("response_format") or "b64_json"
    if chosen not in ("b64_json", "url"):
        raise InvalidRequest("response_format must be url or b64_json.", param="response_format")
    return str(chosen)


def answer(
    body: dict[str, Any], images: list[tuple[str, str]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAI's images answer for ``images`` given as (base64 data, MIME type)."""
    url = format_of(body) == "url"
    data = [
        {"url": f"data:{mime};base64,{b64}"} if url else {"b64_json": b64} for b64, mime in images
    ]
    out: dict[str, Any] = {"created": int(time.time()), "data": data}
    if usage is not None:
        out["usage"] = usage
    return out


def join(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer of several: their images in order, their token usage added up."""
    joined: dict[str, Any] = {
        "created": answers[0]["created"],
        "data": [item for one in answers for item in one["data"]],
    }
    usages = [one["usage"] for one in answers if isinstance(one.get("usage"), dict)]
    if usages:
        keys = ("input_tokens", "output_tokens", "total_tokens")
        joined["usage"] = {key: sum(int(u.get(key) or 0) for u in usages) for key in keys}
    return joined


def images_of(files: Sequence[FormFile]) -> list[FormFile]:
    """The images of an edit or a variation (``image``, or ``image[]`` for several)."""
    found = [f for f in files if f.name in ("image", "image[]")]
    if not found:
        raise InvalidRequest("image is required.", param="image")
    return found


def mask_of(files: Sequence[FormFile]) -> FormFile | None:
    return next((f for f in files if f.name == "mask"), None)


def no_mask(files: Sequence[FormFile], models: str) -> None:
    """A mask refused where the provider's API has no place for one (the gateway names
    the service: ``unsupported_parameter``)."""
    if mask_of(files) is not None:
        raise InvalidRequest(
            f"{models} take no mask: describe the change in the prompt, or send masked "
            "edits to a model that takes one (OpenAI's, Amazon Nova Canvas, Titan Image).",
            param="mask",
            code="unsupported_parameter",
        )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
