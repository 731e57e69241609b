"""Which services a consumer may reach outside a rule's own request: native pass-through,
files and batches (whose ids name the service that holds them).

A consumer reaches a service when its ``passthrough`` list names it, or when a rule it may
use targets it (or falls back to it) and that rule has no guardrails or transforms: such
requests go to the provider as the client wrote them, so a service that the operator put
behind screening is not opened around it, unless the consumer is granted it by name. The
rules that lead to each service are worked out once per routing table, on first use.
"""

from __future__ import annotations

from collections.abc import Mapping

from sluicegate.errors import PermissionDenied
from sluicegate.routing.table import CompiledRule, ConsumerEntry, RoutingTable

# Tables replaced by config changes drop out; the table is kept beside its entry so that its
# id is not reused while the entry lives.
_BY_TABLE: dict[int, tuple[RoutingTable, Mapping[str, tuple[CompiledRule, ...]]]] = {}


def rules_to(table: RoutingTable, service: str) -> tuple[CompiledRule, ...]:
    """The rules whose targets or fallbacks name ``service``, in the order requests try them."""
    found = _BY_TABLE.get(id(table))
    if found is None:
        if len(_BY_TABLE) >= 16:
            _BY_TABLE.clear()
        index: dict[str, list[CompiledRule]] = {}
        for rule in table.rules:
            for step in (*rule.targets, *rule.fallbacks):
                listed = index.setdefault(step.service.name, [])
                if not listed or listed[-1] is not rule:
                    listed.append(rule)
        found = _BY_TABLE[id(table)] = (table, {k: tuple(v) for k, v in index.items()})
    return found[1].get(service, ())


def may_reach(table: RoutingTable, consumer: ConsumerEntry, service: str) -> bool:
    """Whether ``consumer`` may still use ``service`` through any of its rules (to read back
    the files and batches it made there)."""
    if service in consumer.passthrough:
        return True
    return any(consumer.may_use(rule) for rule in rules_to(table, service))


def why_not(table: RoutingTable, consumer: ConsumerEntry, service: str) -> str | None:
    """Why ``consumer`` may not send native (unscreened) requests to ``service``; None when
    it may."""
    if service in consumer.passthrough:
        return None
    usable = [rule for rule in rules_to(table, service) if consumer.may_use(rule)]
    if any(rule.guard is None for rule in usable):
        return None
    if usable:
        return (
            f"the rules it may use that target service '{service}' screen or transform "
            f"requests ({', '.join(rule.name for rule in usable)}), and native requests are "
            "not screened: list the service in its consumer's passthrough to allow them"
        )
    return (
        f"no rule it may use targets service '{service}', nor does its consumer's "
        "passthrough list name it"
    )


def refuse_unscreened(rule: CompiledRule, consumer: ConsumerEntry, what: str) -> None:
    """A 403 when ``rule`` screens or transforms requests and ``what`` (a realtime session,
    a file upload) cannot be: its bytes would reach the provider unscreened. An explicit
    ``passthrough`` grant of every service the rule reaches allows it."""
    if rule.guard is None:
        return
    services = {step.service.name for step in (*rule.targets, *rule.fallbacks)}
    if services <= consumer.passthrough:
        return
    raise PermissionDenied(
        f"Rule '{rule.name}' screens or transforms requests, and {what} cannot be screened: "
        "serve it through a rule without guardrails or transforms, or list the rule's "
        "services in the consumer's passthrough.",
        code="unscreened_endpoint",
    )
