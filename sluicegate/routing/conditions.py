"""A route's ``when:``, compiled once into a list of small tests.

Each test answers for one request and says, in a few words, why it held: the words go
into ``x-sluicegate-route``. Every test of a ``when`` must hold (and).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sluicegate.config.routing import Bounds, When, parse_hours
from sluicegate.routing.facts import Facts


def short(tokens: float) -> str:
    """41234 → ``41k``; small counts stay whole."""
    if tokens >= 10_000:
        return f"{tokens / 1000:.0f}k"
    if tokens >= 1000:
        return f"{tokens / 1000:.1f}k".replace(".0k", "k")
    return f"{tokens:.0f}"


@dataclass(frozen=True, slots=True)
class Range:
    bounds: tuple[tuple[str, float], ...]  # (operator, value)

    @classmethod
    def of(cls, b: Bounds) -> Range:
        pairs = (("gt", b.gt), ("gte", b.gte), ("lt", b.lt), ("lte", b.lte))
        return cls(tuple((op, v) for op, v in pairs if v is not None))

    def holds(self, value: float) -> bool:
        for op, bound in self.bounds:
            if op == "gt" and not value > bound:
                return False
            if op == "gte" and not value >= bound:
                return False
            if op == "lt" and not value < bound:
                return False
            if op == "lte" and not value <= bound:
                return False
        return True

    def text(self, fmt: Callable[[float], str]) -> str:
        signs = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        return " ".join(f"{signs[op]} {fmt(v)}" for op, v in self.bounds)


def _globs(value: str | list[str]) -> re.Pattern[str]:
    items = [value] if isinstance(value, str) else value
    return re.compile("|".join(f"(?:{fnmatch.translate(v)})" for v in items))


@dataclass(frozen=True, slots=True)
class Test:
    """One condition: ``check`` says whether it holds, and if so, the words that say why."""

    check: Callable[[Facts], str | None]


def _prompt(r: Range) -> Test:
    def check(f: Facts) -> str | None:
        n = f.prompt_tokens
        return f"prompt {short(n)} {r.text(short)}" if r.holds(n) else None

    return Test(check)


def _flag(name: str, wanted: bool, read: Callable[[Facts], bool]) -> Test:
    words = name if wanted else f"no {name.removeprefix('has ')}"

    def check(f: Facts) -> str | None:
        return words if read(f) == wanted else None

    return Test(check)


def _header(name: str, pattern: str) -> Test:
    compiled = _globs(pattern)
    lower = name.lower()

    def check(f: Facts) -> str | None:
        value = f.header(lower)
        return f"header {lower}" if value is not None and compiled.fullmatch(value) else None

    return Test(check)


# The words name the config's pattern, never the client's value: a user id or a metadata
# value may be personal data, and the words go into a header and the audit row.
def _metadata(key: str, pattern: str) -> Test:
    compiled = _globs(pattern)
    words = f"metadata.{key} ~ {pattern}"

    def check(f: Facts) -> str | None:
        data = f.body_value("metadata")
        value = data.get(key) if isinstance(data, dict) else None
        ok = isinstance(value, str | int | float) and compiled.fullmatch(str(value))
        return words if ok else None

    return Test(check)


def _user(patterns: str | list[str]) -> Test:
    listed = [patterns] if isinstance(patterns, str) else patterns
    each = [(p, _globs(p)) for p in listed]

    def check(f: Facts) -> str | None:
        value = f.body_value("user")
        if not isinstance(value, str):
            return None
        return next((f"user ~ {p}" for p, glob in each if glob.fullmatch(value)), None)

    return Test(check)


def _consumer(patterns: str | list[str]) -> Test:
    compiled = _globs(patterns)

    def check(f: Facts) -> str | None:
        return f"consumer {f.consumer}" if compiled.fullmatch(f.consumer) else None

    return Test(check)


def _group(names: str | list[str]) -> Test:
    wanted = frozenset([names] if isinstance(names, str) else names)

    def check(f: Facts) -> str | None:
        found = sorted(wanted & f.groups)
        return f"group {found[0]}" if found else None

    return Test(check)


def _budget(r: Range) -> Test:
    def percent(v: float) -> str:
        return f"{v * 100:.0f}%"

    def check(f: Facts) -> str | None:
        used = f.budget_used
        return f"budget {percent(used)} used {r.text(percent)}" if r.holds(used) else None

    return Test(check)


def _hours(window: str, zone: str, now: Callable[[], dt.datetime] | None) -> Test:
    start, end = parse_hours(window)
    tz = ZoneInfo(zone)
    clock = now or (lambda: dt.datetime.now(tz))

    def check(f: Facts) -> str | None:
        t = clock().astimezone(tz)
        minute = t.hour * 60 + t.minute
        inside = start <= minute < end if start < end else minute >= start or minute < end
        return f"hours {window} {zone}" if inside else None

    return Test(check)


@dataclass(frozen=True, slots=True)
class Condition:
    tests: tuple[Test, ...]

    def holds(self, facts: Facts) -> str | None:
        """Why every test held (``"prompt 41k > 8k, has images"``), or None."""
        words = []
        for test in self.tests:
            why = test.check(facts)
            if why is None:
                return None
            words.append(why)
        return ", ".join(words) or "always"


def compile_when(when: When, now: Callable[[], dt.datetime] | None = None) -> Condition:
    tests: list[Test] = []
    if when.prompt_tokens is not None:
        tests.append(_prompt(Range.of(when.prompt_tokens)))
    if when.has_images is not None:
        tests.append(_flag("has images", when.has_images, lambda f: f.has_images))
    if when.has_tools is not None:
        tests.append(_flag("has tools", when.has_tools, lambda f: f.has_tools))
    if when.json_mode is not None:
        tests.append(_flag("json mode", when.json_mode, lambda f: f.json_mode))
    for name, pattern in (when.headers or {}).items():
        tests.append(_header(name, pattern))
    for key, pattern in (when.metadata or {}).items():
        tests.append(_metadata(key, pattern))
    if when.user is not None:
        tests.append(_user(when.user))
    if when.consumer is not None:
        tests.append(_consumer(when.consumer))
    if when.group is not None:
        tests.append(_group(when.group))
    if when.budget_used is not None:
        tests.append(_budget(Range.of(when.budget_used)))
    if when.hours is not None:
        tests.append(_hours(when.hours, when.timezone, now))
    return Condition(tuple(tests))
