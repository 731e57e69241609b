"""The routing decision for a request, made as a real request makes it, without sending
it: ``sluicegate route explain`` (offline, on a config file) and ``POST
/admin/route/explain`` (on the running gateway, with its live latency and health)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.dialects.base import Dialect
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.errors import ModelNotFound, NotFound
from sluicegate.routing.facts import Facts
from sluicegate.routing.semantic import Embed
from sluicegate.routing.smart import decide
from sluicegate.routing.stats import RouteStats
from sluicegate.routing.table import ConsumerEntry, RoutingTable


@dataclass(frozen=True, slots=True)
class Explained:
    rule: str
    route: str  # what x-sluicegate-route would say
    plan: tuple[str, ...]  # service/model of each step, in the order they would be tried

    def shown(self) -> dict[str, Any]:
        return {"rule": self.rule, "route": self.route, "plan": list(self.plan)}


def dialect_of(name: str) -> Dialect:
    return AnthropicDialect() if name == "anthropic" else OpenAIDialect()


async def explain(
    table: RoutingTable,
    stats: RouteStats,
    body: dict[str, Any],
    model: str | None = None,
    consumer: str | None = None,
    headers: dict[str, str] | None = None,
    dialect: str = "openai",
    budget_used: float = 0.0,
    embed: Embed | None = None,
) -> Explained:
    """``consumer``: whose request it is (its rules, groups); None: the anonymous one, or
    any. ``budget_used``: the share of its budget spent (a running gateway's counters are
    not read). ``stats`` is copied: deciding leaves no trace."""
    if model is not None:
        body = {**body, "model": model}
    parsed = dialect_of(dialect).parse("chat", orjson.dumps(body))
    entry = _consumer(table, consumer)
    rules = [r for r in table.candidates(parsed.model) if entry is None or entry.may_use(r)]
    if not rules:
        raise ModelNotFound(f"No rule serves the model '{parsed.model}'.", param="model")
    rule = rules[0]
    assert rule.router is not None
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    facts = Facts(
        parsed.canonical,
        raw_headers,
        entry.name if entry is not None else (consumer or "anonymous"),
        entry.groups if entry is not None else frozenset(),
        budget_used,
        None,
        table.estimate_max_tokens,
    )
    decision = await decide(
        rule.router,
        facts,
        table.models,
        parsed.model,
        stats.snapshot(),
        time.monotonic(),
        table.rng,
        None,
        embed,
    )
    plan = tuple(
        f"{s.service.name}/{s.model}" if s.model else s.service.name for s in decision.steps
    )
    return Explained(rule.name, decision.explain, plan)


def _consumer(table: RoutingTable, name: str | None) -> ConsumerEntry | None:
    if name is None:
        return table.anonymous
    entry = table.consumers.get(name)
    if entry is None:
        raise NotFound(f"No consumer named '{name}'.", code="consumer_not_found")
    return entry
