"""What a media request used, read from its request and its answer, and what that cost.

images        the images in the answer's ``data`` (priced by the request's quality, size)
transcripts   the seconds of audio (``usage.seconds``, or ``duration`` of verbose_json);
              token usage where the model reports it (gpt-4o-transcribe), its audio
              tokens apart, priced by the token price table
speech        the characters of ``input``
rerank        searches (Cohere's ``billed_units.search_units``, else one a request)
moderations   one request
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.media.prices import MediaPrices
from sluicegate.schema.sse import EventSplitter, parse_event
from sluicegate.telemetry.pricing import PriceTable
from sluicegate.telemetry.usage import TokenCounts, read_usage


@dataclass(slots=True)
class MediaUnits:
    images: int = 0
    seconds: float = 0.0
    characters: int = 0
    searches: int = 0
    tokens: TokenCounts | None = None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def from_answer(family: str, request: dict[str, Any], answer: dict[str, Any]) -> MediaUnits:
    """The units of a whole JSON answer of an endpoint of ``family``."""
    units = MediaUnits()
    if family == "images":
        data = answer.get("data")
        units.images = len(data) if isinstance(data, list) else 0
        units.tokens = _tokens(answer.get("usage"))
    elif family == "transcripts":
        read_transcript_usage(answer, units)
    elif family == "rerank":
        meta = answer.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        searches = billed.get("search_units") if isinstance(billed, dict) else None
        units.searches = int(_number(searches)) or 1
    return units


def from_request(family: str, request: dict[str, Any]) -> MediaUnits:
    """The units known before the answer (speech: the characters it is asked to speak)."""
    units = MediaUnits()
    if family == "speech":
        text = request.get("input")
        units.characters = len(text) if isinstance(text, str) else 0
    return units


def read_transcript_usage(document: dict[str, Any], units: MediaUnits) -> None:
    usage = document.get("usage")
    if isinstance(usage, dict) and usage.get("type") == "duration":
        units.seconds = _number(usage.get("seconds"))
    elif isinstance(usage, dict):
        units.tokens = _tokens(usage)
        details = usage.get("input_token_details")
        if units.tokens is not None and isinstance(details, dict):
            units.tokens.audio = int(_number(details.get("audio_tokens")))
    if not units.seconds:
        units.seconds = _number(document.get("duration"))


def _tokens(usage: Any) -> TokenCounts | None:
    counts = read_usage(usage)
    return counts if counts is not None and (counts.input or counts.output) else None


_IMAGE_DONE = frozenset({"image_generation.completed", "image_edit.completed"})


class StreamEvents:
    """Reads a streamed answer's events as they pass: a transcription's
    ``transcript.text.done`` (its usage), an image stream's ``image_generation.completed``
    and ``image_edit.completed`` (one image each, and its usage). The bytes go on untouched."""

    def __init__(self, units: MediaUnits) -> None:
        self.units = units
        self._splitter = EventSplitter()

    def feed(self, data: bytes) -> None:
        for raw in self._splitter.feed(data):
            _, payload = parse_event(raw)
            if b'"usage"' not in payload:  # partial images are large: not parsed
                continue
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") in _IMAGE_DONE:
                self.units.images += 1
                tokens = _tokens(event.get("usage"))
                if tokens is not None:
                    held = self.units.tokens or TokenCounts()
                    held.input += tokens.input
                    held.output += tokens.output
                    self.units.tokens = held
            else:
                read_transcript_usage(event, self.units)


def cost(
    media: MediaPrices,
    tokens: PriceTable,
    model: str,
    units: MediaUnits,
    request: dict[str, Any],
) -> float | None:
    """USD, or None when no price is known for ``model``."""
    if units.tokens is not None and not units.images and tokens.price(model) is not None:
        # A model that reports tokens (gpt-4o-transcribe) is billed by them, not by the
        # minute its media price estimates.
        return tokens.cost(model, units.tokens)
    price = media.price(model)
    if price is None:
        return tokens.cost(model, units.tokens) if units.tokens is not None else None
    total = 0.0
    known = False
    if units.images:
        quality, size = request.get("quality"), request.get("size")
        each = price.per_image(
            quality if isinstance(quality, str) else None, size if isinstance(size, str) else None
        )
        if each is not None:
            total += units.images * each
            known = True
    for count, each in (
        (units.seconds, price.audio_second),
        (units.characters, price.character),
        (units.searches, price.search),
    ):
        if count and each is not None:
            total += count * each
            known = True
    if price.request is not None:
        total += price.request
        known = True
    if not known and units.tokens is not None:
        return tokens.cost(model, units.tokens)
    return total if known else None
