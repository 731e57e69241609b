"""Prometheus metrics, one registry per runtime (no module-level state).

Gauges that describe the routing table (target health, requests in flight
per target) are read from the table when Prometheus scrapes, so the request
path pays nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sluicegate.routing.table import RoutingTable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TableCollector(Collector):
    def __init__(self, tables: Callable[[], Iterable[RoutingTable]]) -> None:
        self._tables = tables

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.monotonic()
        healthy = GaugeMetricFamily(
            "sluicegate_upstream_healthy",
            "1 when the target takes traffic (healthy, or half-open with no trial in flight)",
            labels=["gateway", "service", "target", "state"],
        )
        inflight = GaugeMetricFamily(
            "sluicegate_upstream_inflight_requests",
            "Requests in flight to the target",
            labels=["gateway", "service", "target"],
        )
        for table in self._tables():
            for service in table.services.values():
                for target in service.pool.targets:
                    state = target.health.state(now)
                    labels = [table.gateway, service.name, target.url]
                    up = 1.0 if target.health.available(now) else 0.0
                    healthy.add_metric([*labels, state], up)
                    inflight.add_metric(labels, float(target.inflight))
        yield healthy
        yield inflight


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    """Every metric of one runtime. Label values come from config names or from small
    fixed sets, never from what a client sends (``telemetry.labels`` lists each source)."""

    def __init__(self, tables: Callable[[], Iterable[RoutingTable]]) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        registry.register(TableCollector(tables))
        route = ["gateway", "rule", "service", "provider", "model", "consumer"]
        self.requests = Counter(
            "sluicegate_requests",
            "Requests answered, by route, endpoint and status class",
            [*route, "endpoint", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "sluicegate_request_duration_seconds",
            "Time from the request's arrival to its last byte",
            ["gateway", "rule", "service"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream = Histogram(
            "sluicegate_upstream_duration_seconds",
            "Time spent waiting on providers, all attempts of a request",
            ["gateway", "service", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "sluicegate_overhead_seconds",
            "Time the gateway itself added to a non-streaming request",
            ["gateway"],
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the request's arrival to the first streamed chunk",
            ["gateway", "service", "provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "sluicegate_tokens",
            "Tokens reported by providers (gen_ai.client.token.usage), by type",
            ["gateway", "service", "provider", "model", "consumer", "type"],
            registry=registry,
        )
        self.cost = Counter(
            "sluicegate_cost_usd",
            "Cost of answered requests from the price table",
            ["gateway", "provider", "model", "consumer"],
            registry=registry,
        )
        # Every step of a request's plan, the failed ones behind a fallback included;
        # outcomes: telemetry.attempts (a status class, 429, or a failure kind).
        self.attempts = Counter(
            "sluicegate_upstream_attempts",
            "Attempts on a service's target by outcome (target empty: none was available)",
            ["gateway", "service", "target", "outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "sluicegate_upstream_attempt_duration_seconds",
            "Time of one attempt on a target, to the answer's last byte",
            ["gateway", "service", "target", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "sluicegate_retries",
            "Attempts beyond the first, fallbacks included",
            ["gateway", "rule"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "sluicegate_fallbacks",
            "Requests answered (or failed) after moving to a fallback",
            ["gateway", "rule"],
            registry=registry,
        )
        self.ratelimited = Counter(
            "sluicegate_ratelimited",
            "Requests refused by a rate limit",
            ["gateway", "rule"],
            registry=registry,
        )
        self.limits_backend_up = Gauge(
            "sluicegate_ratelimit_backend_up",
            "1 while the shared rate-limit counters (Redis) answer",
            ["gateway"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "sluicegate_cache_lookups",
            "Requests of rules with a cache, by result (hit, miss, bypass)",
            ["gateway", "rule", "result"],
            registry=registry,
        )
        self.cache_saved_tokens = Counter(
            "sluicegate_cache_saved_tokens",
            "Tokens of answers served from the cache instead of a provider, by type",
            ["gateway", "rule", "type"],
            registry=registry,
        )
        self.cache_saved_cost = Counter(
            "sluicegate_cache_saved_cost_usd",
            "What answers served from the cache would have cost (the price table)",
            ["gateway", "rule"],
            registry=registry,
        )
        self.cache_memory = Gauge(
            "sluicegate_cache_memory_bytes",
            "Bytes held by the in-process cache (entries and vectors), at most its budget",
            registry=registry,
        )
        self.guardrails = Counter(
            "sluicegate_guardrail_verdicts",
            "Guardrail findings by where (request, response), entity type or rule, and action",
            ["gateway", "rule", "on", "type", "action"],
            registry=registry,
        )
        self.inflight = Gauge(
            "sluicegate_inflight_requests", "Requests being served", ["gateway"], registry=registry
        )
        self.audit_queue = Gauge(
            "sluicegate_audit_queue_depth",
            "Audit rows waiting for the batched writer",
            ["gateway"],
            registry=registry,
        )
        self.audit_written = Counter(
            "sluicegate_audit_written_rows",
            "Audit rows written to the store (replayed ones included)",
            ["gateway"],
            registry=registry,
        )
        self.audit_spilled = Counter(
            "sluicegate_audit_spilled_rows",
            "Audit rows put in the local spill file (queue full or store failing), to replay",
            ["gateway"],
            registry=registry,
        )
        self.audit_dropped = Counter(
            "sluicegate_audit_dropped_rows",
            "Audit rows lost: the spill file could not be written, or a line of it not read",
            ["gateway"],
            registry=registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
