"""``GET /admin/health``: the state of every target the gateway sends to: each upstream's
targets (``upstream`` set), then the one target of each endpoint service (``service`` set);
and the config's ``issues``: each store entity left out of the running config, or never
matching."""

from __future__ import annotations

import time
from typing import Any

from sluicegate.routing.balancer import Balancer, Target
from sluicegate.routing.table import RoutingTable


def _row(target: Target, now: float, upstream: str | None, service: str | None) -> dict[str, Any]:
    health = target.health
    return {
        "upstream": upstream,
        "service": service,
        "target": target.url,
        "weight": target.weight,
        "state": health.state(now),
        "inflight": target.inflight,
        "latency_ewma_ms": round(target.ewma * 1000, 3),
        "consecutive_failures": health.consecutive_failures,
        "ejected_for_s": round(max(health.ejected_until - now, 0.0), 3),
        "active_checks": health.active is not None,
        "passive_checks": health.passive is not None,
    }


def health_report(table: RoutingTable) -> dict[str, Any]:
    now = time.monotonic()
    data = [_row(t, now, pool.name, None) for pool in table.pools for t in pool.targets]
    shared: tuple[Balancer, ...] = table.pools
    for name, service in table.services.items():
        if service.pool not in shared:  # an endpoint service: a pool of its own
            data.extend(_row(t, now, None, name) for t in service.pool.targets)
    return {"data": data, "next": None, "issues": [issue.shown() for issue in table.issues]}
