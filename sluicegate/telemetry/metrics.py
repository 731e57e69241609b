"""Prometheus metrics, one registry per runtime (no module-level state).

Gauges that describe the routing table (target health, requests in flight
per target) are read from the table when Prometheus scrapes, so the request
path pays nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sluicegate.routing.table import RoutingTable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TableCollector(Collector):
    def __init__(self, table: Callable[[], RoutingTable]) -> None:
        self._table = table

    def collect(self) -> Iterator[GaugeMetricFamily]:
        table = self._table()
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
        for service in table.services.values():
            for target in service.pool.targets:
                state = target.health.state(now)
                labels = [table.gateway, service.name, target.url]
                healthy.add_metric([*labels, state], 1.0 if target.health.available(now) else 0.0)
                inflight.add_metric(labels, float(target.inflight))
        yield healthy
        yield inflight


class Metrics:
    def __init__(self, table: Callable[[], RoutingTable]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TableCollector(table))

    def render(self) -> bytes:
        return generate_latest(self.registry)
