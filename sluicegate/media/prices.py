"""Prices of media requests: per image, per second of audio, per character, per search.

Image prices depend on the image's quality and size where the provider's do (DALL·E,
gpt-image-1, Nova Canvas): a model's table is keyed by ``"<quality> <size>"``, ``"<size>"``
or ``"<quality>"``, the most specific first, then the model's flat price. Figures from the
providers' public price pages (``PRICES_AS_OF`` in ``telemetry.pricing``); the config's
``pricing:`` entries (``image``, ``audio_second``, ``character``, ``search``, ``request``)
override them. A model is found by its exact name, then by its longest known prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sluicegate.telemetry.pricing import ByName


@dataclass(frozen=True, slots=True)
class MediaPrice:
    image: float | None = None  # USD per image
    images: Mapping[str, float] = field(default_factory=dict)  # by "quality size", size, quality
    audio_second: float | None = None  # USD per second of audio transcribed or translated
    character: float | None = None  # USD per character of text spoken
    search: float | None = None  # USD per rerank search
    request: float | None = None  # USD per request (0: free, e.g. moderations)

    def per_image(self, quality: str | None, size: str | None) -> float | None:
        if size is None or size == "auto":
            size = "1024x1024"  # what the providers make when no size is asked for
        for key in (f"{quality} {size}", size, quality):
            if key is not None and key in self.images:
                return self.images[key]
        return self.image


def _sizes(square: float, wide: float, quality: str = "") -> dict[str, float]:
    prefix = f"{quality} " if quality else ""
    return {
        f"{prefix}1024x1024": square,
        **{
            f"{prefix}{size}": wide for size in ("1024x1536", "1536x1024", "1024x1792", "1792x1024")
        },
    }


MEDIA_PRICES: dict[str, MediaPrice] = {
    # OpenAI images
    "dall-e-3": MediaPrice(0.04, {**_sizes(0.04, 0.08, "standard"), **_sizes(0.08, 0.12, "hd")}),
    "dall-e-2": MediaPrice(0.02, {"256x256": 0.016, "512x512": 0.018, "1024x1024": 0.02}),
    "gpt-image-1": MediaPrice(
        0.042,
        {
            **_sizes(0.011, 0.016, "low"),
            **_sizes(0.042, 0.063, "medium"),
            **_sizes(0.167, 0.25, "high"),
        },
    ),
    # Google
    "imagen-4.0-generate": MediaPrice(0.04),
    "imagen-4.0-fast-generate": MediaPrice(0.02),
    "imagen-4.0-ultra-generate": MediaPrice(0.06),
    "imagen-3.0-generate": MediaPrice(0.03),
    "imagen-3.0-fast-generate": MediaPrice(0.02),
    "gemini-2.5-flash-image": MediaPrice(0.039),
    # Amazon
    "amazon.nova-canvas-v1": MediaPrice(0.04, {"standard": 0.04, "premium": 0.06}),
    "amazon.titan-image-generator-v2": MediaPrice(0.01, {"premium": 0.012}),
    "amazon.titan-image-generator-v1": MediaPrice(0.01, {"premium": 0.012}),
    # Audio
    "whisper-1": MediaPrice(audio_second=0.006 / 60),
    "gpt-4o-transcribe": MediaPrice(audio_second=0.006 / 60),
    "gpt-4o-mini-transcribe": MediaPrice(audio_second=0.003 / 60),
    "tts-1": MediaPrice(character=15.0 / 1_000_000),
    "tts-1-hd": MediaPrice(character=30.0 / 1_000_000),
    # Rerank
    "rerank-v3.5": MediaPrice(search=0.002),
    "rerank-english-v3.0": MediaPrice(search=0.002),
    "rerank-multilingual-v3.0": MediaPrice(search=0.002),
    "cohere.rerank-v3-5": MediaPrice(search=0.002),
    "amazon.rerank-v1": MediaPrice(search=0.001),
    # Moderation is free
    "omni-moderation": MediaPrice(request=0.0),
    "text-moderation": MediaPrice(request=0.0),
}


def _last_segment(model: str, _: object) -> str:
    return model.rsplit("/", 1)[-1]  # "models/imagen-…", an ARN


class MediaPrices:
    """The package's media prices with the config's overrides on top."""

    def __init__(self, overrides: Mapping[str, MediaPrice] | None = None) -> None:
        self._by_name = ByName({**MEDIA_PRICES, **(overrides or {})}, _last_segment)

    def price(self, model: str) -> MediaPrice | None:
        return self._by_name.get(model)
