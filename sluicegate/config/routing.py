"""The config of smart routing: the model catalog (``models:``) and a rule's ``strategy``,
``routes`` and ``semantic`` (docs/routing.md). Validated here, compiled once by
``routing.smart``; the data plane never sees these models."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sluicegate.config.base import Strict

CAPABILITIES = ("tools", "vision", "json_schema", "reasoning", "audio")
Capability = Literal["tools", "vision", "json_schema", "reasoning", "audio"]
STRATEGIES = ("weighted", "cheapest", "fastest", "ordered", "least-busy")
Strategy = Literal["weighted", "cheapest", "fastest", "ordered", "least-busy"]


class ModelSpec(Strict):
    """One model of the catalog. Fields left out keep the built-in entry's values (a model
    the gateway does not know needs ``input`` and ``output`` to be priced)."""

    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    input: float | None = Field(default=None, ge=0)  # USD per million tokens
    output: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)
    audio_input: float | None = Field(default=None, ge=0)  # audio prompt tokens
    capabilities: list[Capability] | None = None  # None: the built-in's (unknown: any)
    description: str | None = None


class Bounds(Strict):
    """A number's bounds: every one given must hold."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Bounds:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("give at least one of gt, gte, lt, lte")
        low = max((v for v in (self.gt, self.gte) if v is not None), default=None)
        high = min((v for v in (self.lt, self.lte) if v is not None), default=None)
        if low is not None and high is not None:
            inclusive = self.gte == low and self.lte == high and self.gt != low
            if low > high or (low == high and not inclusive):
                raise ValueError("no number is within these bounds: the route never matches")
        return self


_HOURS = re.compile(r"^(\d{1,2})(?::(\d{2}))?-(\d{1,2})(?::(\d{2}))?$")


def parse_hours(value: str) -> tuple[int, int]:
    """``"09-17"`` or ``"22:30-06:00"`` as minutes of the day (start, end); end may be
    smaller (a window across midnight)."""
    found = _HOURS.fullmatch(value.strip())
    if found is None:
        raise ValueError(f"'{value}' is not a time window such as 09-17 or 22:30-06:00")
    start = int(found[1]) * 60 + int(found[2] or 0)
    end = int(found[3]) * 60 + int(found[4] or 0)
    if start > 24 * 60 or end > 24 * 60 or int(found[2] or 0) > 59 or int(found[4] or 0) > 59:
        raise ValueError(f"'{value}': hours run from 00 to 24, minutes from 00 to 59")
    if start == end:
        raise ValueError(f"'{value}' is an empty window")
    return start, end


class When(Strict):
    """Every condition given must hold (and); a route with ``when: {}`` always matches."""

    prompt_tokens: Bounds | None = None
    has_images: bool | None = None
    has_tools: bool | None = None
    json_mode: bool | None = None  # response_format json_object or json_schema
    headers: dict[str, str] | None = None  # name: glob
    metadata: dict[str, str] | None = None  # the body's metadata: key: glob
    user: str | list[str] | None = None  # the body's user field: globs
    consumer: str | list[str] | None = None  # globs
    group: str | list[str] | None = None  # the consumer is in any of these groups
    budget_used: Bounds | None = None  # share (0..1) of the consumer's tightest budget spent
    hours: str | None = None  # "09-17", in ``timezone``
    timezone: str = "UTC"

    @field_validator("headers", "metadata", "user", "consumer", "group")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if value is not None and not value:
            raise ValueError("empty: it would never match (or always); give values or leave it out")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone (UTC, Europe/Paris)") from None
        return value

    @field_validator("budget_used")
    @classmethod
    def _share(cls, value: Bounds | None) -> Bounds | None:
        if value is not None:
            for bound in (value.gt, value.gte, value.lt, value.lte):
                if bound is not None and not 0 <= bound <= 1:
                    raise ValueError("a share of the budget, from 0 to 1 (0.8 is 80%)")
        return value


class RuleTarget(Strict):
    """A target of a rule or of one of its routes."""

    service: str
    model: str | None = None
    weight: float = Field(default=1, gt=0)
    # Requests it may have in flight at once, counted by each instance (worker) on its own
    # (least-busy divides by it; a full target is skipped); None: no limit.
    max_inflight: int | None = Field(default=None, ge=1)


class Route(Strict):
    name: str | None = None  # shown in x-sluicegate-route; default: routes[i]
    when: When
    targets: list[RuleTarget] = Field(min_length=1)
    strategy: Strategy | None = None  # None: the rule's


class SemanticRoute(Strict):
    name: str = Field(min_length=1)
    examples: list[str] = Field(min_length=1)
    targets: list[RuleTarget] = Field(min_length=1)
    strategy: Strategy | None = None
    threshold: float | None = Field(default=None, gt=0, le=1)  # None: semantic.threshold


class Semantic(Strict):
    threshold: float = Field(default=0.5, gt=0, le=1)
    embedder: str = "local"  # or a model name a rule of this gateway serves for embeddings
    routes: list[SemanticRoute] = Field(min_length=1)

    @field_validator("routes")
    @classmethod
    def _unique(cls, value: list[SemanticRoute]) -> list[SemanticRoute]:
        seen: set[str] = set()
        for route in value:
            if route.name in seen:
                raise ValueError(f"two routes are named '{route.name}'")
            seen.add(route.name)
        return value


def check_routes(routes: list[Route]) -> list[Route]:
    """A rule's routes, in order: each named once (the explanations name them), and none
    after one that always holds (it would never be reached)."""
    seen: set[str] = set()
    for i, route in enumerate(routes):
        name = route.name or f"routes[{i}]"
        if name in seen:
            raise ValueError(f"two routes are named '{name}'")
        seen.add(name)
        if not route.when.model_fields_set - {"timezone"} and i < len(routes) - 1:
            raise ValueError(
                f"routes[{i}] always holds (when: {{}}), so the routes after it are never "
                "reached: put it last, or drop it and let the rule's targets be the default"
            )
    return routes
