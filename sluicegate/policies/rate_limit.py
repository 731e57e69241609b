"""Request and token limits: which apply to a request, reserving, settling, and the headers.

Limits come from the gateway (``gateway.limits``), the rule
(``policies.rate_limit``) and the consumer (``limits``); each counts per
``consumer``, ``key``, ``rule``, ``model`` or ``global``. All that apply are
reserved in one step before the call: one request, and an estimate of the
tokens (the prompt, counted by ``tokens.PromptCounter``, plus ``max_tokens`` or
``gateway.estimate_max_tokens``). After the call the token reservation is
corrected to the provider's reported usage, or to the gateway's count of the
answer when the provider reported none, or released when there was no answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sluicegate.config.durations import format_duration
from sluicegate.errors import GatewayError, RateLimited
from sluicegate.policies.tokens import PromptCounter, approximate
from sluicegate.policies.windows import SLICES, Counters, Item, MemoryCounters, Reading
from sluicegate.telemetry.usage import TokenCounts, counted_usage

log = logging.getLogger("sluicegate")


MICRO = 1_000_000  # budgets count in millionths of a dollar


@dataclass(frozen=True, slots=True)
class Limit:
    owner: str  # "gateway", "rule:<name>" or "consumer:<name>": where it was configured
    per: str  # consumer | key | rule | model | global
    requests: int | None
    tokens: int | None
    window: float
    usd: float | None = None  # a budget: spend per window

    def describe(self, what: str) -> str:
        scope = "" if self.per == "global" else f" per {self.per}"
        if what == "usd":
            return (
                f"budget of ${self.usd:g} per {format_duration(self.window)}{scope} ({self.owner})"
            )
        amount = self.requests if what == "requests" else self.tokens
        return f"{amount} {what} per {format_duration(self.window)}{scope} ({self.owner})"


def counting(
    limits: Iterable[Limit], *, requests: bool = True, tokens: bool = True, usd: bool = True
) -> tuple[Limit, ...]:
    """``limits`` as a call that counts only these kinds meets them: the other kinds left
    out (a request whose tokens cannot be known is no token item), and a limit with nothing
    left to count dropped."""
    out = []
    for limit in limits:
        kept = replace(
            limit,
            requests=limit.requests if requests else None,
            tokens=limit.tokens if tokens else None,
            usd=limit.usd if usd else None,
        )
        if kept.requests is not None or kept.tokens is not None or kept.usd is not None:
            out.append(kept)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Who:
    gateway: str
    consumer: str
    key: str  # an identifier of the client's key, never the key itself
    rule: str
    model: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request is expected to use, before the call."""

    prompt: int
    completion: int  # max_tokens, or gateway.estimate_max_tokens

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(slots=True)
class Reservation:
    items: list[Item]
    readings: list[Reading]
    tokens: list[tuple[Item, Reading]] = field(default_factory=list)
    estimate: Estimate = Estimate(0, 0)
    spend: list[tuple[Item, Reading]] = field(default_factory=list)

    def counted_usage(self, text_size: int) -> TokenCounts:
        """Usage of an answer whose provider reported none: the prompt as estimated
        before the call, the output from the size of the text generated."""
        return counted_usage(self.estimate.prompt, text_size)


class LimitsUnavailable(GatewayError):
    status = 503
    type = "upstream_unavailable"
    default_code = "rate_limiter_unavailable"


def estimate_tokens(
    body: dict[str, Any], default_max_tokens: int, counter: PromptCounter | None = None
) -> Estimate:
    prompt = counter.count(body) if counter is not None else approximate(body)
    completion = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    if not isinstance(completion, int) or isinstance(completion, bool):
        completion = default_max_tokens
    return Estimate(prompt, completion)


def _items(
    limits: Sequence[Limit], who: Who, estimate: Estimate
) -> tuple[list[Item], list[Limit], list[str]]:
    items: list[Item] = []
    owners: list[Limit] = []
    kinds: list[str] = []
    subjects = {
        "consumer": who.consumer,
        "key": who.key,
        "rule": who.rule,
        "model": who.model,
        "global": "",
    }
    for limit in limits:
        subject = subjects[limit.per]
        # {gateway} is a Redis Cluster hash tag: every key of one request shares a slot.
        base = f"sg:rl:{{{who.gateway}}}:{limit.owner}:{limit.per}:{subject}:{int(limit.window)}"
        slice_ms = max(int(limit.window * 1000 / SLICES), 1)
        if limit.requests is not None:
            items.append(Item(base + ":r", limit.requests, 1, slice_ms))
            owners.append(limit)
            kinds.append("requests")
        if limit.tokens is not None:
            # Never more than the limit can hold: a worst case above it (a large default
            # max_tokens) would be refused for ever; settling corrects it to the real use.
            amount = min(estimate.total, limit.tokens)
            items.append(Item(base + ":t", limit.tokens, amount, slice_ms))
            owners.append(limit)
            kinds.append("tokens")
        if limit.usd is not None:
            # One micro-dollar is held while the request runs, so that the one
            # boundary rule (used + amount > limit) refuses at spend >= budget.
            items.append(Item(base + ":usd", round(limit.usd * MICRO), 1, slice_ms))
            owners.append(limit)
            kinds.append("usd")
    return items, owners, kinds


def _headers(
    items: list[Item], readings: list[Reading], kinds: list[str], allowed: bool
) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the limit of each kind nearest to exhaustion."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        best: tuple[float, Item, Reading] | None = None
        for item, reading, k in zip(items, readings, kinds, strict=True):
            if k != kind:
                continue
            left = item.limit - reading.used - (item.amount if allowed else 0)
            ratio = left / item.limit if item.limit else 0.0
            if best is None or ratio < best[0]:
                best = (ratio, item, reading)
        if best is None:
            continue
        _, item, reading = best
        left = max(item.limit - reading.used - (item.amount if allowed else 0), 0)
        headers[f"x-ratelimit-limit-{kind}"] = str(item.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(left)
        headers[f"x-ratelimit-reset-{kind}"] = format_duration(max(reading.reset_s, 0.0))
    return headers


class RateLimiter:
    """One per runtime; ``counters`` is in process, or Redis when ``gateway.redis`` is set."""

    def __init__(
        self,
        counters: Counters | None = None,
        failure: str = "open",
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.counters: Counters = counters or MemoryCounters()
        self.failure = failure
        self.backend_up = True
        self._on_change = on_change  # told when the counters go away or come back
        self.prompts = PromptCounter()

    def estimate(self, body: dict[str, Any], default_max_tokens: int) -> Estimate:
        return estimate_tokens(body, default_max_tokens, self.prompts)

    async def reserve(
        self, limits: Sequence[Limit], who: Who, estimate: Estimate
    ) -> tuple[Reservation | None, dict[str, str]]:
        """Reserve, or raise ``RateLimited`` naming the limit that is full."""
        if not limits:
            return None, {}
        for limit in limits:
            if limit.tokens is not None and estimate.prompt > limit.tokens:
                # Waiting would not help, so no Retry-After (an SDK would retry in vain).
                raise RateLimited(
                    f"This request's prompt is about {estimate.prompt} tokens, more than the "
                    f"limit of {limit.describe('tokens')} can ever hold.",
                    code="tokens_exceed_limit",
                )
        items, owners, kinds = _items(limits, who, estimate)
        try:
            verdict = await self.counters.reserve(items)
        except Exception as exc:  # the shared counters are out of reach
            self._down(exc)
            if self.failure == "closed":
                raise LimitsUnavailable("Rate limits cannot be checked right now.") from None
            return None, {}
        self._up()
        headers = _headers(items, verdict.readings, kinds, verdict.allowed)
        if not verdict.allowed:
            for item, reading, limit, kind in zip(
                items, verdict.readings, owners, kinds, strict=True
            ):
                if reading.used + item.amount > item.limit:
                    wait = max(math.ceil(reading.reset_s), 1)
                    headers["retry-after"] = str(wait)
                    if kind == "usd":
                        raise RateLimited(
                            f"Budget exhausted: {limit.describe(kind)}. It renews in {wait}s.",
                            code="budget_exceeded",
                            headers=headers,
                        )
                    raise RateLimited(
                        f"Rate limit reached: {limit.describe(kind)}. Try again in {wait}s.",
                        headers=headers,
                    )
        paired = list(zip(items, verdict.readings, kinds, strict=True))
        reservation = Reservation(
            items,
            verdict.readings,
            [(i, r) for i, r, k in paired if k == "tokens"],
            estimate,
            [(i, r) for i, r, k in paired if k == "usd"],
        )
        return reservation, headers

    async def settle(
        self,
        reservation: Reservation | None,
        usage: TokenCounts | None,
        cost: float | None,
        answered: bool = False,
    ) -> None:
        """Correct the reservation to what was used: tokens (nothing, for a failed
        request) and spend (the request's cost instead of the micro-dollar held).

        ``usage`` is the provider's, or ``Reservation.counted_usage`` when it
        reported none. An answer that comes with neither keeps its estimate:
        releasing it would let such clients past their token limits."""
        if reservation is None:
            return
        changes: list[tuple[Item, int, int]] = []
        for item, reading in reservation.tokens:  # each item reserved at most its limit
            if usage is not None:
                delta = usage.input + usage.output - item.amount
            else:
                delta = 0 if answered else -item.amount
            changes.append((item, reading.slice, delta))
        spent = round((cost or 0.0) * MICRO) - 1
        changes += [(item, reading.slice, spent) for item, reading in reservation.spend]
        changes = [c for c in changes if c[2]]
        if not changes:
            return
        try:
            await self.counters.adjust(changes)
        except Exception as exc:
            self._down(exc)

    def _down(self, exc: Exception) -> None:
        if self.backend_up:
            self.backend_up = False
            if self._on_change is not None:
                self._on_change(False)
            log.warning(
                "rate-limit counters unreachable (%s); failing %s", type(exc).__name__, self.failure
            )

    def _up(self) -> None:
        if not self.backend_up:
            self.backend_up = True
            if self._on_change is not None:
                self._on_change(True)
            log.warning("rate-limit counters reachable again")

    async def close(self) -> None:
        await self.counters.close()
