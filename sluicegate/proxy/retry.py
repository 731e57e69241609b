"""Where a request goes again: the key that keeps a caller on one arm of a rule, and the
pause before a retry. Shared by every route that retries (chat, media)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluicegate.proxy.attempt import Failure
    from sluicegate.routing.table import CompiledService


def sticky_key(
    hash_on: str | None, consumer: str, headers: list[tuple[bytes, bytes]]
) -> str | None:
    """What keeps a caller on one arm of the rule (``hash_on``): its consumer, or a header's
    value; None: no stickiness."""
    if hash_on is None:
        return None
    if hash_on == "consumer":
        return consumer
    wanted = hash_on.removeprefix("header:").lower().encode()
    return next((v.decode("latin-1") for k, v in headers if k == wanted), None)


def backoff(service: CompiledService, retry: int, failure: Failure) -> float | None:
    """The pause before retry number ``retry`` (1-based), or None to stop retrying.

    Exponential with full jitter; a provider's Retry-After is honoured when it
    fits within the service's largest backoff, otherwise the service is left
    to the fallbacks.
    """
    base, largest = service.backoff
    if failure.retry_after is not None:
        return failure.retry_after if failure.retry_after <= largest else None
    return random.uniform(0, min(largest, base * 2 ** (retry - 1)))
