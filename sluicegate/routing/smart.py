"""Smart routing: which targets a request goes to, in what order, and why.

A rule's ``Router`` is compiled once: its conditional routes (first match wins), its
semantic routes, and its own targets as the default set. For a request, ``decide``
picks the set, leaves out the targets that cannot serve it (hard: the prompt does not
fit the model's window, images without vision, tools or a JSON schema the model cannot
do; soft: the service is unhealthy, the provider's Retry-After is running, the target's
``max_inflight`` is full), ranks the rest by the set's strategy, and says so in one line
for ``x-sluicegate-route`` and the audit row. The rule's fallbacks follow, in order.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sluicegate.config.model import Rule
from sluicegate.config.routing import RuleTarget
from sluicegate.errors import NoAbleTarget
from sluicegate.providers.models import ModelCatalog, ModelInfo
from sluicegate.routing.balancer import unit_hash
from sluicegate.routing.conditions import Condition, compile_when, short
from sluicegate.routing.facts import Facts, last_user_text
from sluicegate.routing.semantic import Embed, Examples
from sluicegate.routing.stats import ArmStats, RouteStats
from sluicegate.routing.table import CompiledRule, CompiledService, RoutingTable, Step

log = logging.getLogger("sluicegate")

EXPLORE_AFTER = 2.0  # seconds: ``fastest`` tries a target it has not heard from for this long
MAX_EXPLAIN = 480  # characters of x-sluicegate-route


@dataclass(frozen=True, slots=True, eq=False)
class Arm:
    step: Step
    weight: float
    max_inflight: int | None
    info: ModelInfo | None  # the catalog's entry of the model it sends; None: unknown
    label: str  # service/model, as explanations name it

    def inflight(self) -> int:
        return sum(t.inflight for t in self.step.service.pool.targets)

    def healthy(self, now: float) -> bool:
        return any(t.health.available(now) for t in self.step.service.pool.targets)


@dataclass(frozen=True, slots=True, eq=False)
class TargetSet:
    name: str  # "default", or the route's name
    strategy: str
    arms: tuple[Arm, ...]


@dataclass(frozen=True, slots=True, eq=False)
class SemanticRoutes:
    examples: Examples
    sets: tuple[TargetSet, ...]
    thresholds: tuple[float, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Router:
    gateway: str
    rule: str
    default: TargetSet
    routes: tuple[tuple[Condition, TargetSet], ...]
    semantic: SemanticRoutes | None
    fallbacks: tuple[Arm, ...]


@dataclass(slots=True)
class Decision:
    steps: list[Step]
    explain: str


def _hard_skip(arm: Arm, facts: Facts, models: ModelCatalog, client_model: str) -> str | None:
    info = arm.info if arm.step.model is not None else models.info(client_model)
    if info is None:
        return None
    window = info.context_window
    if window is not None and facts.prompt_tokens > window:
        return f"context {short(facts.prompt_tokens)} > {short(window)}"
    asked, most = facts.asked_output, info.max_output
    if asked is not None and most is not None and asked > most:
        return f"max_tokens {short(asked)} > {short(most)}"
    if info.capabilities is None:
        return None
    if not info.able("vision") and facts.has_images:
        return "images, no vision"
    if not info.able("tools") and facts.has_tools:
        return "tools, none in model"
    if not info.able("json_schema") and facts.json_schema:
        return "json_schema, unsupported"
    return None


def _soft_skip(arm: Arm, stats: ArmStats | None, now: float) -> str | None:
    if not arm.healthy(now):
        return "unhealthy"
    if stats is not None and stats.limited_until > now:
        return f"rate-limited {stats.limited_until - now:.0f}s"
    if arm.max_inflight is not None and arm.inflight() >= arm.max_inflight:
        return f"busy {arm.inflight()}/{arm.max_inflight}"
    return None


def _cost(arm: Arm, facts: Facts, models: ModelCatalog, client_model: str) -> float | None:
    info = arm.info if arm.step.model is not None else models.info(client_model)
    price = info.price if info is not None else None
    if price is None:
        return None
    return (facts.prompt_tokens * price.input + facts.output_tokens * price.output) / 1e6


def _usd(value: float) -> str:
    return f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"


class Chooser:
    """One decision's work: filtering, then the strategy's ranking."""

    def __init__(
        self,
        router: Router,
        facts: Facts,
        models: ModelCatalog,
        client_model: str,
        stats: RouteStats,
        now: float,
    ) -> None:
        self.router, self.facts, self.models = router, facts, models
        self.client_model, self.stats, self.now = client_model, stats, now

    def arm_stats(self, arm: Arm) -> ArmStats:
        r = self.router
        return self.stats.of(r.gateway, r.rule, arm.step.service.name, arm.step.model)

    def able(self, arms: tuple[Arm, ...]) -> tuple[list[Arm], list[str]]:
        able: list[Arm] = []
        soft: list[Arm] = []
        skipped: list[str] = []
        for arm in arms:
            why = _hard_skip(arm, self.facts, self.models, self.client_model)
            if why is None:
                why = _soft_skip(arm, self.stats.peek(*self._key(arm)), self.now)
                if why is not None:
                    soft.append(arm)
            if why is None:
                able.append(arm)
            else:
                skipped.append(f"skipped {arm.label}: {why}")
        if not able and soft:  # every able one is busy: better tried than refused
            skipped.append("all able targets busy or unhealthy: trying them anyway")
            return soft, skipped
        return able, skipped

    def _key(self, arm: Arm) -> tuple[str, str, str, str | None]:
        return (self.router.gateway, self.router.rule, arm.step.service.name, arm.step.model)

    def rank(
        self, tset: TargetSet, able: list[Arm], rng: random.Random, key: str | None
    ) -> tuple[list[Arm], str]:
        n = len(able)
        of = f"of {n} able target{'s' if n != 1 else ''}"
        strategy = tset.strategy
        if strategy == "weighted":
            pick = _weighted(able, rng, key)
            return [pick], f"weighted {of}: {pick.label}"
        if strategy == "ordered":
            return able, f"ordered {of}: {able[0].label} first"
        if strategy == "cheapest":
            costs = [_cost(a, self.facts, self.models, self.client_model) for a in able]
            order = sorted(range(n), key=lambda i: (costs[i] is None, costs[i] or 0.0, i))
            ranked = [able[i] for i in order]
            first = costs[order[0]]
            shown = _usd(first) if first is not None else "price unknown"
            return ranked, f"cheapest {of}: {ranked[0].label} ({shown})"
        if strategy == "least-busy":

            def load(arm: Arm) -> float:
                return arm.inflight() / (arm.max_inflight or 1)

            ranked = sorted(able, key=load)
            busy = ranked[0].inflight()
            return ranked, f"least-busy {of}: {ranked[0].label} ({busy} in flight)"
        return self._fastest(able, of)

    def _fastest(self, able: list[Arm], of: str) -> tuple[list[Arm], str]:
        stats = [self.arm_stats(a) for a in able]
        now = self.now
        # Exploration: a target never heard from, or not for a while, gets this one request
        # (one at a time: ``tried`` marks it), so that a recovered provider is seen again.
        for arm, s in zip(able, stats, strict=True):
            if s.latency is None and now - s.tried > EXPLORE_AFTER / 4:
                s.tried = now
                rest = [a for a in able if a is not arm]
                return [arm, *rest], f"fastest {of}: exploring {arm.label} (not measured yet)"
        for arm, s in zip(able, stats, strict=True):
            quiet = now - max(s.seen, s.tried)
            if len(able) > 1 and quiet > EXPLORE_AFTER:
                s.tried = now
                rest = [a for a in able if a is not arm]
                why = f"exploring {arm.label} (last seen {now - s.seen:.0f}s ago)"
                return [arm, *rest], f"fastest {of}: {why}"
        # Never measured: behind every measured target (exploration above gives it a turn).
        order = sorted(range(len(able)), key=lambda i: _latency_or_last(stats[i].latency))
        ranked = [able[i] for i in order]
        first = stats[order[0]].latency
        seen = "not measured yet" if first is None else f"{first * 1000:.0f} ms"
        return ranked, f"fastest {of}: {ranked[0].label} ({seen})"


def _latency_or_last(latency: float | None) -> float:
    return math.inf if latency is None else latency


def _weighted(arms: list[Arm], rng: random.Random, key: str | None) -> Arm:
    if len(arms) == 1:
        return arms[0]
    if key is not None:  # sticky: the same key gets the same arm while the set is the same
        scores = [
            -a.weight / math.log(unit_hash(key, f"{i}:{a.step.service.name}:{a.step.model}"))
            for i, a in enumerate(arms)
        ]
        return arms[scores.index(max(scores))]
    cumulative = list(itertools.accumulate(a.weight for a in arms))
    point = rng.random() * cumulative[-1]
    return arms[bisect.bisect_right(cumulative, point)]


async def decide(
    router: Router,
    facts: Facts,
    models: ModelCatalog,
    client_model: str,
    stats: RouteStats,
    now: float,
    rng: random.Random,
    key: str | None,
    embed: Embed | None,
) -> Decision:
    """The plan for one request and the line that explains it; ``NoAbleTarget`` when no
    target of the chosen set can take the request at all."""
    tset, why = router.default, "default"
    for condition, candidate in router.routes:
        held = condition.holds(facts)
        if held is not None:
            tset, why = candidate, f"route {candidate.name} ({held})"
            break
    else:
        if router.semantic is not None and embed is not None:
            tset, why = await _semantic(router.semantic, facts, embed, router.default)
    chooser = Chooser(router, facts, models, client_model, stats, now)
    able, skipped = chooser.able(tset.arms)
    if not able and len(tset.arms) == 1:
        # One target and nothing to choose: its provider is the judge (an estimate of the
        # prompt must not refuse what the provider would take).
        able = list(tset.arms)
        skipped.append("sent anyway: the only target")
    if not able:
        raise NoAbleTarget(
            f"No target of rule '{router.rule}' can serve this request ({why}; "
            + "; ".join(skipped)
            + ").",
            _clipped("; ".join([f"{why}: no able target", *skipped])),
        )
    ranked, how = chooser.rank(tset, able, rng, key)
    chooser.arm_stats(ranked[0]).tried = now
    fallbacks = [
        a.step for a in router.fallbacks if _hard_skip(a, facts, models, client_model) is None
    ]
    explain = _clipped("; ".join([f"{why}: {how}", *skipped]))
    return Decision([a.step for a in ranked] + fallbacks, explain)


def _clipped(explain: str) -> str:
    return explain if len(explain) <= MAX_EXPLAIN else explain[: MAX_EXPLAIN - 3] + "..."


async def _semantic(
    semantic: SemanticRoutes, facts: Facts, embed: Embed, default: TargetSet
) -> tuple[TargetSet, str]:
    text = last_user_text(facts.body)
    try:
        nearest = await semantic.examples.nearest(text, embed)
    except Exception as exc:  # a broken embedder must not fail requests the default can serve
        log.warning("semantic routes: the embedder failed (%s); using the default", exc)
        return default, f"default (semantic routes: the embedder failed: {type(exc).__name__})"
    if nearest is None:
        return default, "default (no text for semantic routes)"
    tset = semantic.sets[nearest.route]
    threshold = semantic.thresholds[nearest.route]
    if nearest.score >= threshold:
        return tset, f"semantic {tset.name} ({nearest.score:.2f} >= {threshold:g})"
    return default, f"default (nearest semantic {tset.name} {nearest.score:.2f} < {threshold:g})"


_UNSAFE = re.compile(r"[^\x20-\x7e]")


def header_value(explain: str) -> bytes:
    """The explanation as a header value: printable ASCII (a client's metadata value or a
    model name with other characters is shown with ``?``)."""
    return _UNSAFE.sub("?", explain).encode("ascii")


def _arms(
    targets: Sequence[RuleTarget], services: dict[str, CompiledService], models: ModelCatalog
) -> tuple[Arm, ...]:
    out = []
    for t in targets:
        info = models.info(t.model) if t.model is not None else None
        label = f"{t.service}/{t.model}" if t.model else t.service
        out.append(Arm(Step(services[t.service], t.model), t.weight, t.max_inflight, info, label))
    return tuple(out)


def compile_router(
    rule: Rule, gateway: str, services: dict[str, CompiledService], models: ModelCatalog
) -> Router:
    default = TargetSet("default", rule.strategy, _arms(rule.targets, services, models))
    routes = tuple(
        (
            compile_when(route.when),
            TargetSet(
                route.name or f"routes[{i}]",
                route.strategy or rule.strategy,
                _arms(route.targets, services, models),
            ),
        )
        for i, route in enumerate(rule.routes)
    )
    semantic = None
    if rule.semantic is not None:
        spec = rule.semantic
        semantic = SemanticRoutes(
            Examples.of(spec.embedder, [r.examples for r in spec.routes]),
            tuple(
                TargetSet(r.name, r.strategy or rule.strategy, _arms(r.targets, services, models))
                for r in spec.routes
            ),
            tuple(r.threshold or spec.threshold for r in spec.routes),
        )
    fallbacks = tuple(
        Arm(
            Step(services[f.service], f.model),
            1.0,
            None,
            models.info(f.model) if f.model else None,
            f"{f.service}/{f.model}" if f.model else f.service,
        )
        for f in rule.fallbacks
    )
    return Router(
        gateway,
        rule.name,
        default,
        routes,
        semantic,
        fallbacks,
    )


def keep_examples(rules: list[CompiledRule], previous: RoutingTable | None) -> list[CompiledRule]:
    """``rules`` with the running table's embedded examples where a rule's semantic routes
    embed the same texts with the same embedder: a config change does not embed again."""
    if previous is None:
        return rules
    running = {
        r.name: r.router.semantic.examples
        for r in previous.rules
        if r.router is not None and r.router.semantic is not None
    }
    for rule in rules:
        semantic = rule.router.semantic if rule.router is not None else None
        old = running.get(rule.name)
        if semantic is None or old is None or old.matrix is None:
            continue
        new = semantic.examples
        if (old.embedder, old.texts) == (new.embedder, new.texts):
            new.matrix = old.matrix
    return rules


def embedder_warnings(
    rules: Sequence[Rule],
    exact: dict[str, list[int]],
    globs: Sequence[tuple[int, re.Pattern[str]]],
) -> list[str]:
    """What would leave semantic routes to the rule's own targets: the local model not
    installed, or an embeddings model no rule serves."""
    out = []
    for i, rule in enumerate(rules):
        if rule.semantic is None:
            continue
        name = rule.semantic.embedder
        where = f"rules[{i}].semantic.embedder"
        if name == "local":
            from sluicegate.cache.minilm import INSTALL_HINT, model_dir
            from sluicegate.errors import ConfigError

            try:
                model_dir()
            except ConfigError:
                out.append(f"{where}: {INSTALL_HINT}; until then its own targets serve it")
        elif name not in exact and not any(p.fullmatch(name) for _, p in globs):
            out.append(
                f"{where}: no rule serves the model '{name}'; until one does, "
                f"rule '{rule.name}' serves every request with its own targets"
            )
    return out
