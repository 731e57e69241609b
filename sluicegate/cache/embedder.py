"""Embedders of the semantic cache: the local model, or an embeddings service the
gateway itself routes (``policies.cache.embedder: <model>``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sluicegate.cache.minilm import MiniLM

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector

# Asks the gateway's own routing for the embedding of a text with a model: set by the
# proxy, so the embedder goes through rules, retries and fallbacks like any request.
Route = Callable[[str, str], Awaitable[list[float]]]


class LocalEmbedder:
    """all-MiniLM-L6-v2, loaded on first use (about 0.3 s) and run in a worker thread:
    a sentence takes milliseconds of CPU the event loop should not wait on."""

    def __init__(self) -> None:
        self._model: MiniLM | None = None
        self._lock = threading.Lock()

    def _load(self) -> MiniLM:
        with self._lock:
            if self._model is None:
                self._model = MiniLM()
            return self._model

    def load(self) -> None:
        self._load()

    async def embed(self, text: str) -> Vector:
        model = self._model
        if model is None:
            model = await asyncio.to_thread(self._load)
        return await asyncio.to_thread(model.embed, text)


async def routed_embedding(route: Route, model: str, text: str) -> Vector:
    """A vector from an embeddings service, normalised so that a dot product is a cosine."""
    import numpy as np

    values = np.asarray(await route(model, text), dtype=np.float32)
    norm = float(np.linalg.norm(values))
    vector: Vector = values / norm if norm > 0 else values
    return vector
