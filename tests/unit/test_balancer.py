"""Each balancing algorithm over 10,000 picks behaves as its definition says."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.routing.balancer import (
    Latency,
    LeastConnections,
    RoundRobin,
    Target,
    UniformRandom,
    WeightedRandom,
)
from sluicegate.routing.compile import compile_config
from sluicegate.routing.health import PassivePolicy, TargetHealth

N = 10_000


def targets(*weights: float) -> list[Target]:
    return [Target(f"http://t{i}", w) for i, w in enumerate(weights)]


def shares(picks: list[Target | None]) -> dict[str, float]:
    counts = Counter(t.url for t in picks if t is not None)
    return {url: count / len(picks) * 100 for url, count in counts.items()}


def test_round_robin_is_exact_and_smooth() -> None:
    pool = RoundRobin("p", targets(3, 1))
    picks = [pool.pick(0.0) for _ in range(N)]
    assert shares(picks) == {"http://t0": 75.0, "http://t1": 25.0}
    # Smooth: the light target is never starved for long stretches.
    first = [p.url for p in picks[:8]]  # type: ignore[union-attr]
    assert first.count("http://t1") == 2 and first[:4].count("http://t1") == 1


def test_weighted_random_follows_weights_within_two_points() -> None:
    pool = WeightedRandom("p", targets(6, 3, 1), rng=random.Random(7))
    got = shares([pool.pick(0.0) for _ in range(N)])
    for url, expected in {"http://t0": 60, "http://t1": 30, "http://t2": 10}.items():
        assert abs(got[url] - expected) <= 2


def test_random_ignores_weights() -> None:
    pool = UniformRandom("p", targets(6, 3, 1), rng=random.Random(7))
    got = shares([pool.pick(0.0) for _ in range(N)])
    assert all(abs(share - 100 / 3) <= 2 for share in got.values())


def simulate(
    pool: LeastConnections | Latency, service_time: dict[str, int], steps: int = N
) -> Counter[str]:
    """Discrete time: one request arrives per tick, each target takes its own ticks to answer."""
    finishing: dict[int, list[Target]] = {}
    counts: Counter[str] = Counter()
    for tick in range(steps):
        for target in finishing.pop(tick, []):
            target.inflight -= 1
            target.observe(service_time[target.url] / 1000, tick / 1000)
        target = pool.pick(tick / 1000)
        assert target is not None
        counts[target.url] += 1
        target.inflight += 1
        finishing.setdefault(tick + service_time[target.url], []).append(target)
    return counts


def test_least_connections_sends_more_to_the_faster_target() -> None:
    pool = LeastConnections("p", targets(1, 1), rng=random.Random(1))
    counts = simulate(pool, {"http://t0": 2, "http://t1": 8})
    # With requests in flight balanced, throughput follows speed: about 4 to 1.
    assert 3.0 < counts["http://t0"] / counts["http://t1"] < 5.0


def test_least_connections_respects_weights() -> None:
    pool = LeastConnections("p", targets(3, 1), rng=random.Random(1))
    counts = simulate(pool, {"http://t0": 4, "http://t1": 4})
    assert 2.5 < counts["http://t0"] / counts["http://t1"] < 3.5


def test_latency_prefers_the_faster_target() -> None:
    pool = Latency("p", targets(1, 1, 1), rng=random.Random(3))
    counts = simulate(pool, {"http://t0": 1, "http://t1": 5, "http://t2": 20})
    assert counts["http://t0"] > counts["http://t1"] > counts["http://t2"]
    assert counts["http://t0"] / N > 0.6


def test_hash_on_is_sticky_and_spreads_keys_by_weight() -> None:
    pool = RoundRobin("p", targets(3, 1), hash_on="consumer")
    assert pool.key("team-a", []) == "team-a"
    first = {f"c{i}": pool.pick(0.0, f"c{i}") for i in range(2000)}
    assert all(pool.pick(0.0, key) is target for key, target in first.items())
    got = shares(list(first.values()))
    assert abs(got["http://t0"] - 75) <= 4


def test_hash_on_header() -> None:
    pool = RoundRobin("p", targets(1, 1), hash_on="header:x-session")
    assert pool.key("c", [(b"x-session", b"s-1")]) == "s-1"
    assert pool.key("c", []) is None


def test_unavailable_targets_are_skipped_and_a_sticky_key_moves_only_then() -> None:
    policy = PassivePolicy(frozenset({500}), failures=1, timeouts=1, cooldown=60)
    pool = RoundRobin("p", [Target(f"http://t{i}", 1, TargetHealth(policy)) for i in range(3)])
    keys = [f"k{i}" for i in range(300)]
    before = {k: pool.pick(0.0, k) for k in keys}
    down = pool.targets[0]
    down.health.failed("status", 500, now=0.0)
    after = {k: pool.pick(1.0, k) for k in keys}
    assert all(t is not down for t in after.values())
    assert all(after[k] is before[k] for k in keys if before[k] is not down)  # nobody else moved
    assert [pool.pick(1.0) for _ in range(4)].count(down) == 0
    for target in pool.targets[1:]:
        target.health.failed("status", 500, now=0.0)
    assert pool.pick(1.0) is None
    assert pool.why_unavailable(1.0) == "all 3 targets of 'p' are unavailable (3 ejected)"


def rule_table(**rule: Any) -> Any:
    return compile_config(
        parse_config(
            {
                "services": [{"name": "a", "provider": "mock"}, {"name": "b", "provider": "mock"}],
                "rules": [
                    {
                        "name": "r",
                        "targets": [{"service": "a", "weight": 90}, {"service": "b", "weight": 10}],
                        **rule,
                    }
                ],
            },
            env={},
        ).config
    )


def test_sticky_splits_keep_a_consumer_on_one_arm() -> None:
    table = rule_table(hash_on="consumer")
    rule = table.rules[0]
    arms = {
        f"consumer-{i}": rule.pick(table.rng, f"consumer-{i}").service.name for i in range(3000)
    }
    for consumer, arm in list(arms.items())[:200]:
        assert all(rule.pick(table.rng, consumer).service.name == arm for _ in range(5))
    canary = sum(arm == "b" for arm in arms.values()) / len(arms) * 100
    assert abs(canary - 10) <= 2


@pytest.mark.parametrize(
    "algorithm", ["round-robin", "weighted", "random", "least-connections", "latency"]
)
def test_every_algorithm_compiles_from_config(algorithm: str) -> None:
    table = compile_config(
        parse_config(
            {
                "upstreams": [
                    {
                        "name": "u",
                        "algorithm": algorithm,
                        "targets": [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2"}],
                    }
                ],
                "services": [
                    {"name": "s", "type": "upstream", "provider": "vllm", "upstream": "u"}
                ],
                "rules": [{"name": "r", "targets": [{"service": "s"}]}],
            },
            env={},
        ).config
    )
    pool = table.services["s"].pool
    assert type(pool).__name__ in {
        "RoundRobin",
        "WeightedRandom",
        "UniformRandom",
        "LeastConnections",
        "Latency",
    }
    assert pool.pick(0.0) is not None


def test_each_change_of_a_circuit_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from sluicegate.routing.health import ActivePolicy

    where = "service 's' target http://t0"
    passive = PassivePolicy(frozenset({503}), failures=2, timeouts=1, cooldown=5.0)
    health = TargetHealth(passive, ActivePolicy("/h", 1.0, 1.0, 2, 2), where)
    caplog.set_level("INFO", logger="sluicegate")

    def said() -> list[tuple[str, str]]:
        found = [(r.levelname, r.getMessage()) for r in caplog.records]
        caplog.clear()
        return found

    health.failed("status", 503, 0.0)
    assert said() == []  # one failure of two: no change
    health.failed("status", 503, 0.0)
    assert said() == [
        ("WARNING", f"circuit open: {where} ejected for 5s after 2 failures in a row")
    ]
    health.begin(6.0)
    assert said() == [("INFO", f"circuit half-open: {where} gets one trial request")]
    health.failed("timeout", None, 6.0)
    assert said() == [
        ("WARNING", f"circuit open: {where} failed its trial request; ejected for another 5s")
    ]
    health.begin(12.0)
    health.succeeded()
    assert said()[-1] == (
        "INFO",
        f"circuit closed: {where} answered its trial request; back in use",
    )
    health.succeeded()
    assert said() == []  # already closed
    health.probed(False)
    health.probed(False)
    assert said() == [
        ("WARNING", f"{where} is down: 2 health checks failed; not used until they pass")
    ]
    health.probed(True)
    health.probed(True)
    assert said() == [("INFO", f"{where} is up: 2 health checks passed; back in use")]
