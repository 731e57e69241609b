"""The proxy's side of smart routing: the facts of a request, the embedder of semantic
routes, and what each attempt teaches the route statistics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sluicegate.cache.embedder import LocalEmbedder, Route, routed_embedding
from sluicegate.policies.rate_limit import Reservation
from sluicegate.routing.facts import Facts
from sluicegate.routing.semantic import Embed
from sluicegate.routing.smart import Decision, decide
from sluicegate.routing.stats import ArmStats, RouteStats
from sluicegate.routing.table import CompiledRule, ConsumerEntry, RoutingTable, Step

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector
    from sluicegate.proxy.attempt import Failure


def budget_used(reservation: Reservation | None) -> float:
    """The share of the tightest budget already spent, as read when the request reserved
    its limits (no extra round trip): 0 without a budget."""
    if reservation is None:
        return 0.0
    share = 0.0
    for item, reading in reservation.spend:
        if item.limit > 0:
            share = max(share, reading.used / item.limit)
    return min(share, 1.0)


def facts_of(
    table: RoutingTable,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
    consumer: ConsumerEntry,
    reservation: Reservation | None,
) -> Facts:
    return Facts(
        body,
        headers,
        consumer.name,
        consumer.groups,
        budget_used(reservation),
        reservation.estimate.prompt if reservation is not None else None,
        table.estimate_max_tokens,
    )


def embedder(local: LocalEmbedder, route: Route) -> Embed:
    async def embed(name: str, text: str) -> Vector:
        if name == "local":
            return await local.embed(text)
        return await routed_embedding(route, name, text)

    return embed


async def plan(
    table: RoutingTable,
    rule: CompiledRule,
    facts: Facts,
    model: str,
    stats: RouteStats,
    key: str | None,
    embed: Embed | None,
) -> Decision:
    assert rule.router is not None
    return await decide(
        rule.router, facts, table.models, model, stats, time.monotonic(), table.rng, key, embed
    )


def learn(
    stats: RouteStats,
    table: RoutingTable,
    rule: CompiledRule,
    step: Step,
    seconds: float,
    failure: Failure | None,
) -> ArmStats:
    """What one attempt says of its target: how long an answer took, or how it failed."""
    arm = stats.of(table.gateway, rule.name, step.service.name, step.model)
    now = time.monotonic()
    if failure is None:
        arm.observe(seconds, now)
        return arm
    retry_after = None
    if failure.status == 429:
        retry_after = failure.retry_after if failure.retry_after is not None else 1.0
    arm.failed(seconds, now, failure.kind == "timeout", retry_after)
    return arm
