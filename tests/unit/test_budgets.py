"""One boundary rule for budgets in every scope and on both backends: a request is
refused once spend >= budget, and let through while spend < budget."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sluicegate.errors import RateLimited
from sluicegate.policies.rate_limit import Estimate, Limit, RateLimiter, Who
from sluicegate.policies.windows import Counters, MemoryCounters, RedisCounters

SCOPES = ["consumer", "key", "rule", "model", "global"]
OWNERS = {
    "consumer": "consumer:team-a",
    "key": "consumer:team-a",
    "rule": "rule:chat",
    "model": "rule:chat",
    "global": "gateway",
}


def make_counters(backend: str) -> Counters:
    return MemoryCounters() if backend == "memory" else RedisCounters("redis://127.0.0.1:6379/0")


def spend_until_refused(
    backend: str, per: str, budget: float, cost: float, attempts: int = 10
) -> tuple[int, RateLimited | None]:
    """Requests of ``cost`` each against a budget; how many were let through, and the refusal."""
    who = Who(f"t{uuid.uuid4().hex[:8]}", "team-a", "k1", "chat", "m")
    limit = Limit(OWNERS[per], per, None, None, 3600.0, budget)

    async def run() -> tuple[int, RateLimited | None]:
        limiter = RateLimiter(make_counters(backend), "closed")
        served = 0
        refusal = None
        try:
            for _ in range(attempts):
                try:
                    reservation, _ = await limiter.reserve([limit], who, Estimate(1, 1))
                except RateLimited as exc:
                    refusal = exc
                    break
                served += 1
                await limiter.settle(reservation, None, cost, answered=True)
        finally:
            await limiter.close()
        return served, refusal

    return asyncio.run(run())


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("per", SCOPES)
def test_refused_when_spend_reaches_the_budget(backend: str, per: str) -> None:
    # $2.50 a request against $10: after 4 requests spend == budget, so the 5th is refused.
    served, refusal = spend_until_refused(backend, per, 10.0, 2.5)
    assert served == 4
    assert refusal is not None and refusal.code == "budget_exceeded"
    assert refusal.http_status == 429 and int(refusal.headers["retry-after"]) >= 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("per", SCOPES)
def test_let_through_while_spend_is_below_the_budget(backend: str, per: str) -> None:
    # One micro-dollar short of the budget after 4 requests: a 5th is still let through.
    served, refusal = spend_until_refused(backend, per, 10.000001, 2.5)
    assert served == 5 and refusal is not None


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_zero_budget_refuses_everything(backend: str) -> None:
    served, refusal = spend_until_refused(backend, "global", 0.0, 1.0)
    assert served == 0 and refusal is not None


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_failed_request_spends_nothing(backend: str) -> None:
    who = Who(f"t{uuid.uuid4().hex[:8]}", "team-a", "k1", "chat", "m")
    limit = Limit("gateway", "global", None, None, 3600.0, 1.0)

    async def run() -> int:
        limiter = RateLimiter(make_counters(backend), "closed")
        served = 0
        try:
            for _ in range(5):  # each holds one micro-dollar, then gives it back
                reservation, _ = await limiter.reserve([limit], who, Estimate(1, 1))
                await limiter.settle(reservation, None, None, answered=False)
                served += 1
            reservation, _ = await limiter.reserve([limit], who, Estimate(1, 1))
            assert reservation is not None
            used = reservation.readings[0].used
        finally:
            await limiter.close()
        return used

    assert asyncio.run(run()) == 0
