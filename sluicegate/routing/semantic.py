"""Semantic routes: the route whose example utterances are nearest to the prompt.

The examples are embedded once, on the rule's first request that reaches its semantic
routes (by the local model or an embeddings rule), and kept with the compiled rule until
a config change compiles it anew. A request to a rule without semantic routes, or one a
conditional route already chose for, never embeds anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector

Embed = Callable[[str, str], Awaitable["Vector"]]  # (embedder, text) → a unit vector


@dataclass(frozen=True, slots=True)
class Nearest:
    route: int  # index into the semantic routes
    score: float  # cosine similarity of the nearest example
    example: str


@dataclass(slots=True, eq=False)
class Examples:
    """The examples of every semantic route of one rule, and (once embedded) their vectors
    as one matrix, so that a request costs one embedding and one matrix product."""

    embedder: str
    texts: tuple[str, ...]
    owners: tuple[int, ...]  # the route of each example
    matrix: Any = None  # numpy array (len(texts), dimensions), once embedded
    _lock: asyncio.Lock | None = field(default=None, repr=False)

    @classmethod
    def of(cls, embedder: str, routes: Sequence[Sequence[str]]) -> Examples:
        texts = tuple(text for examples in routes for text in examples)
        owners = tuple(i for i, examples in enumerate(routes) for _ in examples)
        return cls(embedder, texts, owners)

    async def ready(self, embed: Embed) -> Any:
        if self.matrix is not None:
            return self.matrix
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent first requests embed the examples once
            if self.matrix is None:
                import numpy as np

                vectors = [await embed(self.embedder, text) for text in self.texts]
                self.matrix = np.stack(vectors).astype(np.float32)
        return self.matrix

    async def nearest(self, text: str, embed: Embed) -> Nearest | None:
        if not text.strip():
            return None
        matrix = await self.ready(embed)
        vector = await embed(self.embedder, text)
        scores = matrix @ vector
        best = int(scores.argmax())
        return Nearest(self.owners[best], float(scores[best]), self.texts[best])
