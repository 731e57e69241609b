"""The order rules are tried in, and the rules that order leaves nothing to.

A request tries rules by ``priority`` (lower first), ties in the order they are
listed (the file's, then the store's by creation); the first whose model
patterns, paths and headers match, and that the caller may use, routes it.

A rule is *shadowed* when rules tried before it take every request it could
match, so its policies (guardrails, cache, limits) never run. Whether one glob
takes everything another matches is undecidable in general, so only certain
cases count: a model name an earlier rule names too or matches with a glob; a
glob identical to an earlier one; anything after a rule that matches every
model. The earlier rule must also ask no more than the later one (no paths or
headers it lacks) and be open to everyone the later one is: a consumer, group
or key that may use the later rule but not the earlier one still reaches it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sluicegate.config.model import Rule, matches_every_model

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(pattern)


def normal_path(path: str) -> str:
    """Match paths are taken with or without ``/v1``; requests are compared with it."""
    return path if path.startswith("/v1/") else "/v1" + path


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def match_order(rules: Sequence[Rule]) -> list[int]:
    """The indexes of ``rules`` in the order requests try them (a stable sort)."""
    return sorted(range(len(rules)), key=lambda i: rules[i].priority)


@dataclass(frozen=True, slots=True)
class Shadow:
    rule: int  # the index of a rule that can never match
    by: tuple[int, ...]  # the rules tried before it that take all it matches


def _conditions_cover(first: Rule, later: Rule) -> bool:
    """Whether every request ``later`` accepts by path and headers, ``first`` accepts too."""
    if first.match.paths:
        wanted = {normal_path(p) for p in first.match.paths}
        if not later.match.paths or not {normal_path(p) for p in later.match.paths} <= wanted:
            return False
    later_headers = {k.lower(): v for k, v in later.match.headers.items()}
    return all(later_headers.get(k.lower()) == v for k, v in first.match.headers.items())


def _takes(first: Rule, pattern: str) -> bool:
    """Whether ``first`` certainly matches every model ``pattern`` matches."""
    models = first.match.models
    if matches_every_model(models):
        return True
    if is_glob(pattern):
        return pattern in models
    return any(m == pattern or (is_glob(m) and _glob(m).fullmatch(pattern)) for m in models)


def shadows(rules: Sequence[Rule], allow_lists: Collection[Collection[str]] = ()) -> list[Shadow]:
    """The rules that can never match, with the rules that take their requests first.

    ``allow_lists`` are the ``rules`` lists of consumers, groups and keys: a rule one of
    them allows without the earlier rule is still reached by that caller."""
    order = match_order(rules)
    found = []
    for place, index in enumerate(order):
        later = rules[index]
        # Only the earlier rules open to everyone this one is open to.
        earlier = [
            i
            for i in order[:place]
            if _conditions_cover(rules[i], later)
            and not any(later.name in a and rules[i].name not in a for a in allow_lists)
        ]
        if not earlier:
            continue
        by: list[int] = []
        for pattern in later.match.models or ["*"]:
            first = next((i for i in earlier if _takes(rules[i], pattern)), None)
            if first is None:
                break
            if first not in by:
                by.append(first)
        else:
            found.append(Shadow(index, tuple(by)))
    return found


def shadow_message(rules: Sequence[Rule], shadow: Shadow, names: Sequence[str] = ()) -> str:
    """Why a rule never matches and what to do; ``names``: how to call each of ``by``
    (default: ``rule 'chat'``)."""
    shown = list(names) or [f"rule '{rules[i].name}'" for i in shadow.by]
    parts = [f"{n} (priority {rules[i].priority})" for n, i in zip(shown, shadow.by, strict=True)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    below = min(rules[i].priority for i in shadow.by)
    return (
        f"can never match: every model it names is matched first by {listed}; "
        f"give it a priority below {below} to try it first"
    )


def order_issues(
    rules: Sequence[Rule], allow_lists: Collection[Collection[str]], prefix: str = ""
) -> list[str]:
    """``config validate``'s errors for the rules of one gateway that can never match."""
    return [
        f"{prefix}rules[{s.rule}]: {shadow_message(rules, s)}" for s in shadows(rules, allow_lists)
    ]
