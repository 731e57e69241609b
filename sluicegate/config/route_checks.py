"""Checks of smart routing's config that one model alone cannot make: a route's ``group``
that names no group, a catalog entry for an unknown model without a price. Run on the
raw document, so that they are reported with the schema's own errors."""

from __future__ import annotations

from typing import Any

from sluicegate.providers.models import ModelCatalog


def group_issues(rule: dict[str, Any], groups: set[str]) -> list[str]:
    routes = rule.get("routes")
    issues: list[str] = []
    for j, route in enumerate(routes if isinstance(routes, list) else []):
        when = route.get("when") if isinstance(route, dict) else None
        named = when.get("group") if isinstance(when, dict) else None
        names = [named] if isinstance(named, str) else named if isinstance(named, list) else []
        for name in names:
            if isinstance(name, str) and name not in groups:
                issues.append(f"routes[{j}].when.group: unknown group '{name}'")
    return issues


def model_issues(models: Any) -> list[str]:
    """A model the built-in catalog does not know is priced only when both of its prices
    are given (one alone would price the other at zero, and ``cheapest`` would love it)."""
    if not isinstance(models, dict):
        return []
    known = ModelCatalog()
    issues = []
    for name, spec in models.items():
        if not isinstance(spec, dict):
            continue
        given = [f for f in ("input", "output") if spec.get(f) is not None]
        base = known.info(str(name))
        if len(given) == 1 and (base is None or base.price is None):
            missing = "output" if given == ["input"] else "input"
            issues.append(
                f"models.{name}.{missing}: required: '{name}' is not in the built-in catalog, "
                f"so its {missing} price must be given with its {given[0]} price"
            )
    return issues
