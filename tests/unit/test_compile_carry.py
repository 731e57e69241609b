"""A new table keeps the running pools whose upstream is unchanged (health, in flight, latency)."""

from __future__ import annotations

from typing import Any

from sluicegate.config.load import parse_config
from sluicegate.routing.compile import compile_config
from sluicegate.routing.table import RoutingTable


def table(pool: dict[str, Any], previous: RoutingTable | None = None, **extra: Any) -> RoutingTable:
    config = {
        "upstreams": [
            {"name": "pool", **pool},
            {"name": "other", "targets": [{"url": "http://10.0.0.9:8000"}]},
        ],
        "services": [
            {"name": "svc", "type": "upstream", "provider": "openai-compatible", "upstream": "pool"}
        ],
        "rules": [{"name": "r", "targets": [{"service": "svc"}]}],
        **extra,
    }
    loaded = parse_config(config, env={})
    return compile_config(loaded.config, loaded.warnings, previous)


POOL: dict[str, Any] = {
    "algorithm": "least-connections",
    "targets": [{"url": "http://10.0.0.5:8000", "weight": 2}, {"url": "http://10.0.0.6:8000"}],
    "healthchecks": {"passive": {"failures": 2, "cooldown": "30s"}},
}


def test_an_unchanged_upstream_keeps_its_targets() -> None:
    first = table(POOL)
    target = first.pools[0].targets[0]
    target.inflight, target.ewma = 3, 0.25
    target.health.consecutive_failures = 1
    # Another part of the config changes: the pool and its targets carry over.
    second = table(POOL, first, consumers=[{"name": "a", "keys": ["sk-aaaaaaaaaa"]}])
    assert second is not first
    assert second.pools[0] is first.pools[0]
    assert second.services["svc"].pool is first.pools[0]
    kept = second.pools[0].targets[0]
    assert (kept.inflight, kept.ewma, kept.health.consecutive_failures) == (3, 0.25, 1)
    assert second.pools[1] is first.pools[1]


def test_a_changed_upstream_starts_afresh() -> None:
    first = table(POOL)
    changes: list[dict[str, Any]] = [
        {**POOL, "algorithm": "round-robin"},
        {**POOL, "targets": [{"url": "http://10.0.0.5:8000", "weight": 3}]},
        {**POOL, "targets": [*POOL["targets"], {"url": "http://10.0.0.7:8000"}]},
        {**POOL, "healthchecks": {"passive": {"failures": 5}}},
        {**POOL, "hash_on": "consumer"},
    ]
    for changed in changes:
        second = table(changed, first)
        assert second.pools[0] is not first.pools[0], changed
        assert all(t not in first.pools[0].targets for t in second.pools[0].targets)
        assert second.pools[1] is first.pools[1]  # the other one is unchanged


def endpoints(previous: RoutingTable | None = None, **service: Any) -> RoutingTable:
    config = {
        "services": [
            {"name": "api", "provider": "openai", "host": "10.0.0.8", **service},
            {"name": "demo", "provider": "mock"},
        ],
        "rules": [{"name": "r", "targets": [{"service": "api"}, {"service": "demo"}]}],
    }
    loaded = parse_config(config, env={})
    return compile_config(loaded.config, loaded.warnings, previous)


def test_an_endpoint_service_has_passive_checks_and_keeps_its_health() -> None:
    first = endpoints()
    api, demo = first.services["api"].pool.targets[0], first.services["demo"].pool.targets[0]
    for target in (api, demo):  # the defaults of an endpoint service without healthchecks
        passive = target.health.passive
        assert passive is not None
        assert (passive.failures, passive.timeouts, passive.cooldown) == (5, 3, 10.0)
        assert passive.statuses == {500, 502, 503, 504}
    api.health.failed("connect", None, 100.0)
    # A change elsewhere keeps the running target, its health with it.
    second = endpoints(first, description="the same target")
    assert second.services["api"].pool is first.services["api"].pool
    assert second.services["demo"].pool is first.services["demo"].pool
    assert second.services["api"].pool.targets[0].health.consecutive_failures == 1
    # Another host, or other checks: a new target.
    for changed in ({"host": "10.0.0.9"}, {"healthchecks": {"passive": {"failures": 2}}}):
        assert endpoints(first, **changed).services["api"].pool is not first.services["api"].pool
    off = endpoints(first, healthchecks={}).services["api"].pool.targets[0]
    assert off.health.passive is None
