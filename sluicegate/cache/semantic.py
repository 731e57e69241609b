"""The in-process vector index of the semantic cache.

Vectors are kept per partition (everything but the last user turn must match
exactly), next to the entry they lead to in the LRU: an entry the LRU drops
takes its vector with it, so the index never outgrows the LRU's byte budget.
A partition's vectors are stacked into one matrix when first searched after a
change; a search is one matrix-vector product.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector


class _Partition:
    __slots__ = ("keys", "matrix", "vectors")

    def __init__(self) -> None:
        self.vectors: dict[str, Vector] = {}
        self.keys: list[str] = []
        self.matrix: Any = None  # the stacked vectors; None: rebuild on the next search


class MemoryIndex:
    def __init__(self) -> None:
        self._partitions: dict[str, _Partition] = {}
        self._where: dict[str, str] = {}  # entry key -> its partition

    def __len__(self) -> int:
        return len(self._where)

    def add(self, partition: str, key: str, vector: Vector) -> None:
        self.remove(key)
        part = self._partitions.setdefault(partition, _Partition())
        part.vectors[key] = vector
        part.matrix = None
        self._where[key] = partition

    def remove(self, key: str) -> None:
        partition = self._where.pop(key, None)
        if partition is None:
            return
        part = self._partitions[partition]
        del part.vectors[key]
        part.matrix = None
        if not part.vectors:
            del self._partitions[partition]

    def nearest(self, partition: str, vector: Vector) -> tuple[str, float] | None:
        part = self._partitions.get(partition)
        if part is None:
            return None
        if part.matrix is None:
            import numpy as np

            part.keys = list(part.vectors)
            part.matrix = np.stack([part.vectors[k] for k in part.keys])
        scores = part.matrix @ vector
        best = int(scores.argmax())
        return part.keys[best], float(scores[best])
