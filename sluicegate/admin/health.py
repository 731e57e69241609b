"""``GET /admin/health``: the state of every target the gateway balances over, and the
config's ``issues``: each store entity left out of the running config, or never matching."""

from __future__ import annotations

import time
from typing import Any

from sluicegate.routing.table import RoutingTable


def health_report(table: RoutingTable) -> dict[str, Any]:
    now = time.monotonic()
    data = []
    for pool in table.pools:
        for target in pool.targets:
            health = target.health
            data.append(
                {
                    "upstream": pool.name,
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
            )
    return {"data": data, "next": None, "issues": [issue.shown() for issue in table.issues]}
