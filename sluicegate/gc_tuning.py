"""The garbage collector's settings for a serving process (docs/performance.md).

A request allocates a few hundred short-lived objects (ASGI messages, headers,
the parsed body, coroutine frames), so at CPython's default first-generation
threshold of 700 the cyclic collector runs every couple of requests. Nearly
all of those objects are freed by reference counting anyway; the collections
only cost time. What exists once the gateway has started (modules, config,
routing table, connection pools) lives as long as the process, so it is frozen
out of every later collection.
"""

from __future__ import annotations

import gc

# Young objects allocated (net) between two first-generation collections; the
# older generations keep CPython's ratios (every 10 collections of the one below).
YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Call once start-up is done, in each worker process."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
