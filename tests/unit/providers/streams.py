"""Helpers for stream decoder tests."""

from __future__ import annotations

from typing import Any

from sluicegate.providers.base import StreamDecoder


def feed_raising(decoder: StreamDecoder, data: bytes) -> list[dict[str, Any]]:
    """Feed ``data``; raise the error the provider reported in its stream, if any.

    Decoders keep the chunks that came before a provider's error event and hold
    the error in ``decoder.error``; the relay sends the chunks, then the error.
    """
    chunks = decoder.feed(data)
    if decoder.error is not None:
        raise decoder.error
    return chunks
