"""An in-process LRU whose size is counted in bytes, with a TTL per entry.

Values are the serialised entries (bytes), so their size is known exactly; each
entry is also charged a fixed overhead for the key, the dict slot and the
bookkeeping, so the budget holds for real memory too (tests/unit/test_cache_lru.py
measures it). An entry larger than an eighth of the budget is not kept: one
answer should not empty the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

# What one entry costs beyond its value and key: the OrderedDict node and slot,
# the tuple, the float and the int, the objects' headers and the table's slack
# (measured with tracemalloc, rounded up).
ENTRY_OVERHEAD = 400


class ByteLRU:
    def __init__(
        self,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._on_evict = on_evict
        self._items: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    @staticmethod
    def cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, expires, _ = item
        if expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes, ttl: float, extra: int = 0) -> bool:
        """Keep ``value`` for ``ttl`` seconds; ``extra`` bytes held elsewhere for this
        entry (a semantic vector) count against the budget too. False: too large."""
        size = self.cost(key, value) + extra
        if size > self.max_bytes // 8:
            return False
        if key in self._items:
            self._drop(key, evicted=False)
        while self._items and self.bytes + size > self.max_bytes:
            self._drop(next(iter(self._items)))
        self._items[key] = (value, self._clock() + ttl, size)
        self.bytes += size
        return True

    def _drop(self, key: str, evicted: bool = True) -> None:
        _, _, size = self._items.pop(key)
        self.bytes -= size
        if evicted and self._on_evict is not None:
            self._on_evict(key)
