"""What a write through the Admin API may not do to the running config.

``admin.layers.build`` never refuses the store's entities: it leaves out what does
not fit and reports it, so that a start or a reload cannot fail on them. A writer
must not add to that list, so a write is refused when the entity it writes would
have an issue (be left out, or never match), or when another entity would get one
it did not have. A rule that would never match is a 409 naming the rules that take
its requests; anything else a 422 listing each problem with its path.
"""

from __future__ import annotations

from typing import Any

from sluicegate.admin.layers import PLURAL, Built
from sluicegate.config.model import matches_every_model
from sluicegate.errors import Conflict, Unprocessable
from sluicegate.routing.table import RoutingTable


def refuse_new_issues(built: Built, running: RoutingTable | None, written: str) -> None:
    """Raise if ``built`` has an issue of the entity ``written`` (its id), or a new one."""
    before = {(i.id, i.path, i.message) for i in running.issues} if running is not None else set()
    new = [
        i for i in built.table.issues if i.id == written or (i.id, i.path, i.message) not in before
    ]
    if not new:
        return
    # The entity's own problems, when it has any: what names it only follows from them.
    own = [i for i in new if i.id == written and i.left_out]
    if own:
        raise Unprocessable([(i.path, i.message) for i in own])
    for issue in new:
        if issue.kind == "rule" and not issue.left_out:
            raise Conflict(f"rules/{issue.name} {issue.message}.", code="rule_shadowed")
    problems = []
    for issue in new:
        plural = PLURAL.get(issue.kind, issue.kind + "s")
        where = f"{plural}/{issue.name}" + (f".{issue.path}" if issue.path else "")
        problems.append((where, issue.message))
    raise Unprocessable(problems)


def _models(doc: dict[str, Any] | None) -> list[str]:
    match = (doc or {}).get("match")
    models = match.get("models") if isinstance(match, dict) else None
    return [m for m in models if isinstance(m, str)] if isinstance(models, list) else []


def refuse_undeclared_catch_all(doc: dict[str, Any], before: dict[str, Any] | None) -> None:
    """A rule that takes every model says so: ``catch_all: true`` or ``models: ["*"]``.

    Without this, ``PATCH {"match": null}`` (or a POST that forgot ``match``) quietly
    turned a rule into one that takes every request of the rules after it. A rule that
    already matched every model keeps doing so (what a GET shows can be PUT back)."""
    if not matches_every_model(_models(doc)) or doc.get("catch_all") is True:
        return
    if "*" in _models(doc):
        return
    if before is not None and matches_every_model(_models(before)):
        return
    raise Unprocessable(
        [
            (
                "match.models",
                "empty, so this rule would match every model; if that is meant, "
                "say catch_all: true (or match: {models: ['*']})",
            )
        ]
    )
