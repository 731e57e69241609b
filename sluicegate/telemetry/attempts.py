"""The steps a request's plan took: each attempt on a service's target, and each service
passed over, for the metrics and the audit row (docs/observability.md).

An outcome is a label value, so it comes from a small fixed set, never from what a
provider or client sends:

    2xx, 3xx, 4xx, 429, 5xx        the provider answered with that status class (429 alone)
    connect, timeout, invalid      no answer, no answer in time, an answer that cannot be read
    auth                           the service's credentials could not be obtained
    unavailable                    no target of the service was available (ejected or down):
                                   nothing was sent
    unsupported                    the service does not serve the endpoint: nothing was sent
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

OUTCOMES = frozenset(
    {
        "2xx",
        "3xx",
        "4xx",
        "429",
        "5xx",
        "connect",
        "timeout",
        "invalid",
        "auth",
        "unavailable",
        "unsupported",
    }
)
_SENT = frozenset({"unavailable", "unsupported"})  # outcomes of steps that sent nothing


def outcome(kind: str, status: int | None) -> str:
    """The outcome of a step: ``kind`` is a failure's (``status`` for an answer)."""
    if kind != "status":
        return kind if kind in OUTCOMES else "invalid"
    if status == 429:
        return "429"
    if status is None or not 200 <= status < 600:
        return "invalid"
    return f"{status // 100}xx"


@dataclass(slots=True)
class Tried:
    """One step of a request's plan. ``target`` is the target's configured URL, None when
    nothing was sent; ``seconds`` runs to the answer's last byte (a stream's included)."""

    service: str
    target: str | None
    outcome: str
    status: int | None = None
    seconds: float = 0.0

    @property
    def sent(self) -> bool:
        return self.outcome not in _SENT

    def shown(self) -> dict[str, object]:
        return {
            "service": self.service,
            "target": self.target,
            "status": self.status,
            "outcome": self.outcome,
            "ms": round(self.seconds * 1000, 3),
        }


def detail(tried: list[Tried]) -> str | None:
    """The audit row's ``attempts_detail``: JSON text, None when no step was taken."""
    if not tried:
        return None
    return orjson.dumps([t.shown() for t in tried]).decode()
