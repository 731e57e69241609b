"""Choosing a target: the balancing algorithms over an upstream's healthy targets.

    round-robin        in turn, in proportion to weight (smooth weighted round robin)
    weighted           at random, in proportion to weight
    random             at random, ignoring weights
    least-connections  fewest requests in flight per unit of weight
    latency            power of two choices on peak-EWMA latency times (in flight + 1)

With ``hash_on`` (``consumer`` or ``header:<name>``) a request with that key
always lands on the same healthy target (weighted rendezvous hashing), and
moves only when that target becomes unavailable.

A service of ``type: endpoint`` is a pool of one target, with passive health checks
(``routing.health.ENDPOINT_PASSIVE`` unless its ``healthchecks`` say otherwise).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence

from sluicegate.routing.health import TargetHealth

_TAU = 10.0  # seconds over which the latency EWMA forgets


class Target:
    """One server of a pool, with what the balancer and health checks know of it."""

    __slots__ = ("_current", "_stamp", "ewma", "health", "inflight", "name", "url", "weight")

    def __init__(self, url: str, weight: float = 1.0, health: TargetHealth | None = None) -> None:
        self.url = url
        self.name = url
        self.weight = weight
        self.health = health or TargetHealth()
        self.inflight = 0
        self.ewma = 0.0  # seconds; 0 until measured, which favours new targets
        self._stamp = 0.0
        self._current = 0.0  # smooth weighted round-robin state

    def observe(self, latency: float, now: float) -> None:
        """Peak EWMA: a slower sample counts at once, a faster one decays in."""
        if latency > self.ewma or self._stamp == 0.0:
            self.ewma = latency
        else:
            decay = math.exp(-(now - self._stamp) / _TAU)
            self.ewma = self.ewma * decay + latency * (1 - decay)
        self._stamp = now


class Balancer:
    """Picks among the available targets; subclasses are the algorithms."""

    def __init__(
        self,
        name: str,
        targets: Sequence[Target],
        hash_on: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.targets = tuple(targets)
        self.hash_on = hash_on
        self.rng = rng or random.Random()

    def key(self, consumer: str, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The sticky key of a request, when ``hash_on`` is set."""
        if self.hash_on is None:
            return None
        if self.hash_on == "consumer":
            return consumer
        wanted = self.hash_on.removeprefix("header:").lower().encode()
        for name, value in headers:
            if name == wanted:
                return value.decode("latin-1")
        return None

    def pick(self, now: float, key: str | None = None) -> Target | None:
        if len(self.targets) == 1:
            only = self.targets[0]
            return only if only.health.available(now) else None
        available = [t for t in self.targets if t.health.available(now)]
        if not available:
            return None
        if key is not None:
            return rendezvous(available, key)
        return self.choose(available)

    def choose(self, available: list[Target]) -> Target:
        raise NotImplementedError

    def why_unavailable(self, now: float) -> str:
        states = [t.health.state(now) for t in self.targets]
        counts = ", ".join(
            f"{states.count(s)} {s}" for s in ("down", "ejected", "half-open") if s in states
        )
        return f"all {len(states)} targets of '{self.name}' are unavailable ({counts})"


class RoundRobin(Balancer):
    def choose(self, available: list[Target]) -> Target:
        total = 0.0
        best = available[0]
        for target in available:
            target._current += target.weight
            total += target.weight
            if target._current > best._current:
                best = target
        best._current -= total
        return best


class WeightedRandom(Balancer):
    def choose(self, available: list[Target]) -> Target:
        return self.rng.choices(available, weights=[t.weight for t in available])[0]


class UniformRandom(Balancer):
    def choose(self, available: list[Target]) -> Target:
        return self.rng.choice(available)


class LeastConnections(Balancer):
    def choose(self, available: list[Target]) -> Target:
        best = min((t.inflight + 1) / t.weight for t in available)
        ties = [t for t in available if (t.inflight + 1) / t.weight == best]
        return ties[0] if len(ties) == 1 else self.rng.choice(ties)


class Latency(Balancer):
    def choose(self, available: list[Target]) -> Target:
        if len(available) == 1:
            return available[0]
        a, b = self.rng.sample(available, 2)
        return a if a.ewma * (a.inflight + 1) <= b.ewma * (b.inflight + 1) else b


ALGORITHMS: dict[str, type[Balancer]] = {
    "round-robin": RoundRobin,
    "weighted": WeightedRandom,
    "random": UniformRandom,
    "least-connections": LeastConnections,
    "latency": Latency,
}


def unit_hash(key: str, url: str) -> float:
    digest = hashlib.blake2b(f"{key}\x00{url}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 1) / (2**64 + 1)


def rendezvous(targets: Sequence[Target], key: str) -> Target:
    """Weighted highest-random-weight hashing: stable, and minimal movement."""
    return max(targets, key=lambda t: -t.weight / math.log(unit_hash(key, t.url)))
