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


@dataclass(frozen=True, slots=True)
class _Asks:
    """What a rule asks of a request besides its model: paths (None: any), headers."""

    paths: frozenset[str] | None
    headers: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, rule: Rule) -> _Asks:
        paths = frozenset(normal_path(p) for p in rule.match.paths) or None
        return cls(paths, frozenset((k.lower(), v) for k, v in rule.match.headers.items()))

    def no_more_than(self, later: _Asks) -> bool:
        """Whether every request ``later`` accepts by path and headers, this accepts too."""
        if self.paths is not None and (later.paths is None or not later.paths <= self.paths):
            return False
        return self.headers <= later.headers


def _must_allow(
    rules: Sequence[Rule], allow_lists: Collection[Collection[str]]
) -> dict[str, frozenset[str]]:
    """By rule name: the rules every allow list that names it names too. A rule no list
    names is absent (nothing narrows who may use it)."""
    out: dict[str, frozenset[str]] = {}
    names = {r.name for r in rules}
    for listed in allow_lists:
        allowed = frozenset(listed) & names
        for name in allowed:
            out[name] = out[name] & allowed if name in out else allowed
    return out


def shadows(rules: Sequence[Rule], allow_lists: Collection[Collection[str]] = ()) -> list[Shadow]:
    """The rules that can never match, with the rules that take their requests first.

    ``allow_lists`` are the ``rules`` lists of consumers, groups and keys: a rule one of
    them allows without the earlier rule is still reached by that caller. The earlier
    rules are indexed by model, glob and catch-all as the order is walked, so a config
    of thousands of rules is checked in about the time it takes to compile."""
    order = match_order(rules)
    place = {index: n for n, index in enumerate(order)}
    asks = [_Asks.of(rule) for rule in rules]
    must = _must_allow(rules, allow_lists)
    exact: dict[str, list[int]] = {}  # model name -> earlier rules naming it, in order
    same_glob: dict[str, list[int]] = {}  # glob -> earlier rules with that very glob
    globs: list[tuple[int, re.Pattern[str]]] = []  # earlier rules' globs, in order
    every: list[int] = []  # earlier rules matching every model, in order
    found = []
    for index in order:
        later = rules[index]
        wanted = must.get(later.name)  # None: nothing narrows who may use it
        by: list[int] = []
        for pattern in later.match.models or ["*"]:
            if is_glob(pattern):
                candidates = [*same_glob.get(pattern, ()), *every]
            else:
                matching = [i for i, glob in globs if glob.fullmatch(pattern)]
                candidates = [*exact.get(pattern, ()), *matching, *every]
            usable = [
                i
                for i in candidates
                if asks[i].no_more_than(asks[index]) and (wanted is None or rules[i].name in wanted)
            ]
            first = min(usable, key=place.__getitem__) if usable else None
            if first is None:
                by = []
                break
            if first not in by:
                by.append(first)
        if by:
            found.append(Shadow(index, tuple(by)))
        models = later.match.models
        if matches_every_model(models):
            every.append(index)
            continue
        for pattern in dict.fromkeys(models):
            if is_glob(pattern):
                same_glob.setdefault(pattern, []).append(index)
                globs.append((index, _glob(pattern)))
            else:
                exact.setdefault(pattern, []).append(index)
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
