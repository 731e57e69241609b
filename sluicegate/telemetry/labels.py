"""The label values a request may give the metrics: names the config knows, or ``other``.

Each distinct label value is a series that Prometheus and this process keep for
good, so no value may come from what a client chooses. The sources, label by label:

- ``gateway``, ``rule``, ``service``, ``provider``, ``target``: the config's names
  (a cached answer names the service that produced it, also a config name; a target is
  an upstream target's or an endpoint service's configured URL, empty when an attempt
  found none available);
- ``model``: the model the target rewrites to, else the client's model when some
  rule names it literally, else ``other`` (``""`` when no rule matched);
- ``consumer``: a configured consumer's name; a token subject that only
  ``auth.jwt.default_consumer`` admits is counted under that consumer's name;
- ``endpoint``: the route's own name in the code (``chat``, ``images.generations``, …),
  never the path a client sent;
- ``status``, ``type``, ``result``, ``on``, ``action``, ``state``, ``outcome``: small
  fixed sets (``outcome``: ``telemetry.attempts``)
  (a guardrail ``type`` is a built-in entity type or ``deny:<rule name>``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.routing.table import RoutingTable
from sluicegate.telemetry.exchange import Exchange

OTHER = "other"


@dataclass(frozen=True, slots=True)
class LabelNames:
    models: frozenset[str]
    consumers: frozenset[str]
    stranger: str  # the label of a consumer the config does not name

    @classmethod
    def of(cls, table: RoutingTable) -> LabelNames:
        models = set(table.exact)
        for rule in table.rules:
            models.update(step.model for step in (*rule.targets, *rule.fallbacks) if step.model)
            transform = rule.policies.transform
            if transform is not None:
                models.update(transform.models.values())
        consumers = set(table.consumers)
        if table.anonymous is not None:
            consumers.add(table.anonymous.name)
        default = table.jwt.default_consumer if table.jwt is not None else None
        return cls(frozenset(models), frozenset(consumers), default or OTHER)

    def model(self, ex: Exchange) -> str:
        if ex.model is None:  # no rule matched: nothing to name
            return ""
        if ex.upstream_model is not None and ex.upstream_model in self.models:
            return ex.upstream_model
        return ex.model if ex.model in self.models else OTHER

    def consumer(self, name: str | None) -> str:
        if not name:
            return ""
        return name if name in self.consumers else self.stranger
