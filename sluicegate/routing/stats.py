"""What routing has seen of each target lately, kept across config changes.

One ``ArmStats`` per gateway, rule and target (service and model): a decaying average of
its time to an answer (the first chunk of a stream, the whole body otherwise), when it
was last seen and last chosen first, a provider's ``Retry-After`` still running, and a
decaying count of the attempts sent to it (its share of the rule's traffic). ``fastest`` reads
the average; the dashboard reads all of it. In process only: each instance sees its own
traffic, as its health checks do.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# The average forgets with time as well as with samples: a sample taken after a quiet
# while (an exploration) counts for most of it, so one good answer redeems a target.
LATENCY_TAU = 1.0  # seconds
MIN_ALPHA = 0.3
FAILED_SECONDS = 30.0  # what a failed attempt weighs in the latency average: as a timeout
SHARE_TAU = 60.0  # the share of traffic is a decaying count over about a minute


@dataclass(slots=True)
class ArmStats:
    latency: float | None = None  # seconds, decaying average; None: never answered
    seen: float = 0.0  # monotonic time of the last sample
    tried: float = 0.0  # monotonic time it was last chosen first
    limited_until: float = 0.0  # a provider's Retry-After, as a monotonic time
    sent: float = 0.0  # decaying count of the attempts sent to it (retries, fallbacks too)
    sent_at: float = 0.0
    answers: int = 0
    failures: int = 0
    cost: float = 0.0  # USD of its answers since the process started

    def observe(self, seconds: float, now: float) -> None:
        if self.latency is None:
            self.latency = seconds
        else:
            alpha = max(MIN_ALPHA, 1.0 - math.exp(-(now - self.seen) / LATENCY_TAU))
            self.latency += alpha * (seconds - self.latency)
        self.seen = now
        self.answers += 1

    def failed(self, seconds: float, now: float, timeout: bool, retry_after: float | None) -> None:
        """A failed attempt counts as a slow answer: the client waited and got nothing, so
        ``fastest`` must rank the target behind any that answers (a timeout took at least
        its time; any other failure counts ``FAILED_SECONDS``)."""
        self.failures += 1
        slow = max(seconds, self.latency or 0.0) if timeout else FAILED_SECONDS
        self.observe(max(slow, seconds), now)
        self.answers -= 1
        if retry_after is not None:
            self.limited_until = max(self.limited_until, now + retry_after)

    def attempted(self, now: float) -> None:
        self.sent = self.share_weight(now) + 1.0
        self.sent_at = now

    def share_weight(self, now: float) -> float:
        return self.sent * math.exp(-(now - self.sent_at) / SHARE_TAU)


class RouteStats:
    """Every target's ``ArmStats`` by (gateway, rule, service, model); bounded by the
    config (targets are the config's, never the clients')."""

    def __init__(self) -> None:
        self._arms: dict[tuple[str, str, str, str], ArmStats] = {}

    def of(self, gateway: str, rule: str, service: str, model: str | None) -> ArmStats:
        key = (gateway, rule, service, model or "")
        found = self._arms.get(key)
        if found is None:
            found = self._arms[key] = ArmStats()
        return found

    def snapshot(self) -> RouteStats:
        """A copy to decide on without leaving a trace (``route explain``)."""
        copy = RouteStats()
        copy._arms = {k: dataclasses.replace(v) for k, v in self._arms.items()}
        return copy

    def peek(self, gateway: str, rule: str, service: str, model: str | None) -> ArmStats | None:
        return self._arms.get((gateway, rule, service, model or ""))
