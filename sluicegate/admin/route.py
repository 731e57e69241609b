"""Smart routing in the Admin API: ``POST /admin/route/explain``, the running gateway's
decision for a request (with its live latency, health and load) made without sending the
request or counting it; ``GET /admin/route/stats``, every rule's targets as routing sees
them now (the dashboard's Rules page)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin.entities import json_response
from sluicegate.errors import Unprocessable
from sluicegate.proxy.explain import explain
from sluicegate.routing.smart import Arm
from sluicegate.routing.stats import RouteStats
from sluicegate.routing.table import RoutingTable

if TYPE_CHECKING:
    from sluicegate.admin.api import AdminApi


class RouteEndpoints:
    def __init__(self, api: AdminApi) -> None:
        self.api = api

    def routes(self, prefix: str) -> list[Route]:
        return [
            Route(f"{prefix}/route/explain", self.explain, methods=["POST"]),
            Route(f"{prefix}/route/stats", self.stats, methods=["GET"]),
        ]

    async def stats(self, request: Request) -> Response:
        gw = self.api.gw(request)
        table = self.api.runtime.tables[gw]
        return json_response({"data": live(table, self.api.runtime.route_stats)})

    async def explain(self, request: Request) -> Response:
        api = self.api
        payload = await api.body(request)
        body = payload.get("body")
        if not isinstance(body, dict):
            raise Unprocessable([("body", "the request to explain, a JSON object")])
        gw = api.gw(request)
        runtime = api.runtime
        table = runtime.tables[gw]
        embed = api.embedder(table) if api.embedder is not None else None
        found = await explain(
            table,
            runtime.route_stats,
            body,
            _text(payload, "model"),
            _text(payload, "consumer"),
            {str(k): str(v) for k, v in (payload.get("headers") or {}).items()},
            _text(payload, "dialect") or "openai",
            float(payload.get("budget_used") or 0.0),
            embed,
        )
        return json_response(found.shown())


def live(table: RoutingTable, stats: RouteStats) -> list[dict[str, Any]]:
    """Per rule, each of its targets (those of its routes and fallbacks too): the catalog's
    price, the decaying latency, health, requests in flight, its share of the rule's recent
    traffic, what it has answered and failed and spent since the process started."""
    now = time.monotonic()
    out = []
    for rule in table.rules:
        router = rule.router
        if router is None:
            continue
        arms: dict[tuple[str, str | None], tuple[Arm, list[str]]] = {}
        sets = [router.default, *(s for _, s in router.routes)]
        if router.semantic is not None:
            sets += router.semantic.sets
        for tset in sets:
            for arm in tset.arms:
                key = (arm.step.service.name, arm.step.model)
                arms.setdefault(key, (arm, []))[1].append(tset.name)
        for arm in router.fallbacks:
            key = (arm.step.service.name, arm.step.model)
            arms.setdefault(key, (arm, []))[1].append("fallback")
        seen = {k: stats.peek(table.gateway, rule.name, *k) for k in arms}
        total = sum(s.share_weight(now) for s in seen.values() if s is not None)
        targets = []
        for key, (arm, where) in arms.items():
            s = seen[key]
            price = arm.info.price if arm.info is not None else None
            targets.append(
                {
                    "service": key[0],
                    "model": key[1],
                    "sets": where,
                    "healthy": arm.healthy(now),
                    "inflight": arm.inflight(),
                    "max_inflight": arm.max_inflight,
                    "latency_ms": None if s is None or s.latency is None else s.latency * 1000,
                    "share": s.share_weight(now) / total if s is not None and total else 0.0,
                    "answers": s.answers if s is not None else 0,
                    "failures": s.failures if s is not None else 0,
                    "cost_usd": s.cost if s is not None else 0.0,
                    "input_price": price.input if price is not None else None,
                    "output_price": price.output if price is not None else None,
                }
            )
        out.append({"rule": rule.name, "strategy": router.default.strategy, "targets": targets})
    return out


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) else None
