"""The overview's numbers: snapshots of the runtime's own metrics, kept in memory.

A background task reads the cumulative Prometheus counters and the latency
histogram every few seconds and keeps the readings in rings (5 s apart for an
hour, 1 min apart for a day; per-consumer, per-model and per-service sums less
often). Any window is then the difference of two readings. The request path
pays nothing for this: it already updates those metrics. The figures are those
of this process since it started (see docs/dashboard.md); the audit log
(``/admin/usage``) is the record across instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import Metric

from sluicegate.telemetry.metrics import Metrics

TICK = 5.0
WINDOWS = {"1h": 3600.0, "1d": 86400.0}
MAX_POINTS = 120  # per chart: a window's readings are merged down to this many
TOP = 8

# (requests, errors, tokens, cost) of one consumer, model or service (a service's
# requests and errors are its attempts)
Sums = tuple[float, float, float, float]


@dataclass(slots=True)
class Totals:
    """One gateway's cumulative figures since the process started."""

    requests: float = 0.0
    errors: float = 0.0  # answered 4xx or 5xx
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # latency: le → cumulative count
    by: dict[str, dict[str, Sums]] = field(default_factory=dict)  # "consumer"/"model"/"service"


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # unix seconds
    gateways: dict[str, Totals]


def _samples(metric: Any, suffix: str) -> Iterable[tuple[dict[str, str], float]]:
    families: list[Metric] = metric.collect()
    for family in families:
        for sample in family.samples:
            if sample.name.endswith(suffix):
                yield sample.labels, sample.value


def _add(table: dict[str, Sums], name: str, sums: Sums) -> None:
    old = table.get(name, (0.0, 0.0, 0.0, 0.0))
    table[name] = (old[0] + sums[0], old[1] + sums[1], old[2] + sums[2], old[3] + sums[3])


def read(metrics: Metrics, labelled: bool) -> Reading:
    """The metrics now; with ``labelled``, also summed per consumer, model and service."""
    gateways: dict[str, Totals] = {}

    def of(labels: dict[str, str]) -> Totals:
        name = labels.get("gateway", "")
        if name not in gateways:
            gateways[name] = Totals(by={"consumer": {}, "model": {}, "service": {}})
        return gateways[name]

    for labels, value in _samples(metrics.requests, "_total"):
        totals = of(labels)
        failed = value if labels.get("status") in ("4xx", "5xx") else 0.0
        totals.requests += value
        totals.errors += failed
        if labelled:
            for kind in ("consumer", "model"):
                _add(totals.by[kind], labels.get(kind, ""), (value, failed, 0.0, 0.0))
    if labelled:
        # A service's requests are its attempts: one that failed behind a fallback (and so
        # answered no request) shows its failures; a cache hit asked no service.
        for labels, value in _samples(metrics.attempts, "_total"):
            failed = value if labels.get("outcome") != "2xx" else 0.0
            _add(of(labels).by["service"], labels.get("service", ""), (value, failed, 0.0, 0.0))
    for labels, value in _samples(metrics.tokens, "_total"):
        totals = of(labels)
        kind = labels.get("type", "")
        if kind == "input":
            totals.input_tokens += value
        elif kind == "output":
            totals.output_tokens += value
        else:
            continue  # cached and reasoning tokens are parts of input and output
        if labelled:
            for by in ("consumer", "model", "service"):
                _add(totals.by[by], labels.get(by, ""), (0.0, 0.0, value, 0.0))
    for labels, value in _samples(metrics.cost, "_total"):
        totals = of(labels)
        totals.cost += value
        if labelled:
            for by in ("consumer", "model"):
                _add(totals.by[by], labels.get(by, ""), (0.0, 0.0, 0.0, value))
    for labels, value in _samples(metrics.duration, "_bucket"):
        totals = of(labels)
        le = float(labels["le"])
        totals.buckets[le] = totals.buckets.get(le, 0.0) + value
    if not labelled:
        for totals in gateways.values():
            totals.by = {}
    return Reading(time.time(), gateways)


class Ring:
    """Readings at least ``step`` seconds apart, as far back as ``span``."""

    def __init__(self, step: float, span: float) -> None:
        self.step = step
        self.items: deque[Reading] = deque(maxlen=int(span / step) + 2)

    def due(self, now: float) -> bool:
        return not self.items or now - self.items[-1].at >= self.step - 0.5

    def add(self, reading: Reading) -> None:
        self.items.append(reading)

    def since(self, start: float) -> list[Reading]:
        """The readings from ``start`` on, with the last one before it as the baseline."""
        items = list(self.items)
        first = 0
        for i, item in enumerate(items):
            if item.at <= start:
                first = i
        return items[first:]


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Like PromQL's ``histogram_quantile``: linear within the bucket, seconds."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bound: the bound is all we know
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def _minus(new: dict[float, float], old: dict[float, float]) -> dict[float, float]:
    return {le: count - old.get(le, 0.0) for le, count in new.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _delta(new: Totals, old: Totals, seconds: float) -> dict[str, Any]:
    requests = new.requests - old.requests
    errors = new.errors - old.errors
    buckets = _minus(new.buckets, old.buckets)
    return {
        "requests": requests,
        "rps": round(requests / seconds, 3) if seconds > 0 else 0.0,
        "errors": errors,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "p50_ms": _ms(quantile(0.5, buckets)),
        "p99_ms": _ms(quantile(0.99, buckets)),
        "input_tokens": new.input_tokens - old.input_tokens,
        "output_tokens": new.output_tokens - old.output_tokens,
        "cost_usd": round(new.cost - old.cost, 6),
    }


def _top(new: dict[str, Sums], old: dict[str, Sums], limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, sums in new.items():
        before = old.get(name, (0.0, 0.0, 0.0, 0.0))
        requests, errors, tokens, cost = (a - b for a, b in zip(sums, before, strict=True))
        if requests > 0 or tokens > 0:
            rate = round(errors / requests, 4) if requests > 0 else 0.0
            row = {"requests": requests, "errors": errors, "error_rate": rate, "tokens": tokens}
            rows.append({"name": name, **row, "cost_usd": round(cost, 6)})
    rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"], r["name"]))
    return rows[:limit]


class Sampler:
    """Reads ``metrics`` every ``TICK`` seconds while started."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.started = time.time()
        self.hour = Ring(TICK, WINDOWS["1h"])
        self.day = Ring(60.0, WINDOWS["1d"])
        # Per-label sums are bigger: kept coarser, enough for "the last hour / day".
        self.labelled = {"1h": Ring(300.0, WINDOWS["1h"]), "1d": Ring(3600.0, WINDOWS["1d"])}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.sample()
            self._task = asyncio.create_task(self._run(), name="dashboard sampler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.sample()

    def sample(self) -> None:
        now = time.time()
        labelled = any(ring.due(now) for ring in self.labelled.values())
        reading = read(self.metrics, labelled)
        # The fine rings keep no per-label sums: those are what costs memory.
        plain = Reading(reading.at, {g: replace(t, by={}) for g, t in reading.gateways.items()})
        for ring in (self.hour, self.day):
            if ring.due(now):
                ring.add(plain)
        for ring in self.labelled.values():
            if ring.due(now):
                ring.add(reading)

    def summary(self, gateway: str, window: str) -> dict[str, Any]:
        """Charts, totals and top lists of ``gateway`` over ``window`` (a key of WINDOWS)."""
        span = WINDOWS[window]
        now = read(self.metrics, labelled=True)
        start = now.at - span
        ring = self.hour if window == "1h" else self.day
        readings = [*ring.since(start), now]
        empty = Totals(by={"consumer": {}, "model": {}, "service": {}})
        points = []
        stride = max(1, math.ceil((len(readings) - 1) / MAX_POINTS))
        marks = readings[::stride]
        if marks[-1] is not now:
            marks.append(now)
        for old, new in itertools.pairwise(marks):
            before, after = old.gateways.get(gateway, empty), new.gateways.get(gateway, empty)
            delta = _delta(after, before, new.at - old.at)
            points.append({"t": round(new.at, 3), **delta})
        first = readings[0]
        newest = now.gateways.get(gateway, empty)
        totals = _delta(newest, first.gateways.get(gateway, empty), now.at - first.at)
        base = self.labelled[window].since(start)
        by_old = base[0].gateways.get(gateway, empty).by if base else {}
        return {
            "gateway": gateway,
            "window": window,
            "since": round(max(first.at, self.started), 3),
            "now": round(now.at, 3),
            "process_started": round(self.started, 3),
            "totals": totals,
            "points": points,
            "top_consumers": _top(newest.by["consumer"], by_old.get("consumer", {}), TOP),
            "top_models": _top(newest.by["model"], by_old.get("model", {}), TOP),
            "services": _top(newest.by["service"], by_old.get("service", {}), 1000),
        }
