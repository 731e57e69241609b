from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.routing.compile import compile_config
from sluicegate.routing.table import RoutingTable


def table_for(data: dict[str, Any]) -> RoutingTable:
    return compile_config(parse_config(data, env={}).config)


SERVICES = [
    {"name": "a", "provider": "mock"},
    {"name": "b", "provider": "mock"},
    {"name": "c", "provider": "mock"},
]


@pytest.mark.parametrize("weights", [(90, 10), (50, 50), (70, 20, 10), (1, 1, 1)])
def test_weighted_split_within_two_points(weights: tuple[int, ...]) -> None:
    targets = [{"service": s["name"], "weight": w} for s, w in zip(SERVICES, weights, strict=False)]
    table = table_for({"services": SERVICES, "rules": [{"name": "r", "targets": targets}]})
    rule = table.rules[0]
    counts = Counter(rule.plan(table.rng)[0].service.name for _ in range(10_000))
    total = sum(weights)
    for target in targets:
        share = counts[target["service"]] / 10_000 * 100
        assert abs(share - target["weight"] / total * 100) <= 2, (counts, weights)


def test_plan_is_pick_then_fallbacks_in_order() -> None:
    table = table_for(
        {
            "services": SERVICES,
            "rules": [
                {
                    "name": "r",
                    "targets": [{"service": "a"}],
                    "fallbacks": [{"service": "c", "model": "m2"}, {"service": "b"}],
                }
            ],
        }
    )
    plan = table.rules[0].plan(random.Random(1))
    assert [(s.service.name, s.model) for s in plan] == [("a", None), ("c", "m2"), ("b", None)]


def test_matching_exact_and_glob_in_config_order() -> None:
    # gpt asks for a header, so mini after it can still match (config.order).
    gpt = {"models": ["gpt-*"], "headers": {"x-team": "a"}}
    table = table_for(
        {
            "services": SERVICES,
            "rules": [
                {"name": "gpt", "match": gpt, "targets": [{"service": "a"}]},
                {
                    "name": "mini",
                    "match": {"models": ["gpt-4o-mini"]},
                    "targets": [{"service": "b"}],
                },
                {"name": "exact", "match": {"models": ["claude"]}, "targets": [{"service": "c"}]},
                {"name": "any", "targets": [{"service": "c"}]},
            ],
        }
    )
    assert [r.name for r in table.candidates("gpt-4o-mini")] == ["gpt", "mini", "any"]
    assert [r.name for r in table.candidates("claude")] == ["exact", "any"]
    assert [r.name for r in table.candidates("llama")] == ["any"]


def test_header_and_path_conditions() -> None:
    table = table_for(
        {
            "services": SERVICES,
            "rules": [
                {
                    "name": "r",
                    "match": {
                        "models": ["m"],
                        "paths": ["/chat/completions"],
                        "headers": {"x-team": "blue*"},
                    },
                    "targets": [{"service": "a"}],
                }
            ],
        }
    )
    rule = table.rules[0]
    assert table.matches_headers
    assert rule.accepts("/v1/chat/completions", {"x-team": "blue-2"})
    assert not rule.accepts("/v1/chat/completions", {"x-team": "red"})
    assert not rule.accepts("/v1/chat/completions", {})
    assert not rule.accepts("/v1/embeddings", {"x-team": "blue"})


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ({"protocol": "https", "host": "api.openai.com"}, "https://api.openai.com/v1"),
        ({"protocol": "http", "host": "10.0.0.5", "port": 8000}, "http://10.0.0.5:8000/v1"),
        (
            {"protocol": "https", "host": "h", "port": 443, "path": "/openai/v1/"},
            "https://h/openai/v1",
        ),
        ({"protocol": "http", "host": "::1", "port": 9000, "path": ""}, "http://[::1]:9000"),
    ],
)
def test_endpoint_base_urls(service: dict[str, Any], url: str) -> None:
    table = table_for(
        {
            "services": [{"name": "s", "provider": "openai", **service}],
            "rules": [{"name": "r", "targets": [{"service": "s"}]}],
        }
    )
    service = table.services["s"]
    assert tuple(t.url + service.path for t in service.pool.targets) == (url,)


def test_upstream_targets_round_robin_with_service_path() -> None:
    table = table_for(
        {
            "upstreams": [
                {
                    "name": "pool",
                    "targets": [{"url": "http://10.0.0.5:8000"}, {"url": "http://10.0.0.6:8000/"}],
                }
            ],
            "services": [
                {
                    "name": "s",
                    "type": "upstream",
                    "provider": "openai-compatible",
                    "upstream": "pool",
                }
            ],
            "rules": [{"name": "r", "targets": [{"service": "s"}]}],
        }
    )
    service = table.services["s"]
    picks = [service.pool.pick(0.0).url + service.path for _ in range(4)]  # type: ignore[union-attr]
    assert picks == ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"] * 2


def test_keys_are_held_hashed() -> None:
    table = table_for(
        {
            "services": SERVICES,
            "rules": [{"name": "r", "targets": [{"service": "a"}]}],
            "consumers": [{"name": "t", "keys": ["sk-plain-text-key"]}],
        }
    )
    assert all(isinstance(k, bytes) and len(k) == 32 for k in table.keys)
    consumer = table.authenticate("sk-plain-text-key")
    assert consumer is not None and consumer.name == "t"
    assert table.authenticate("sk-other") is None
    assert table.authenticate(None) is None  # consumers exist, so a key is required


def test_without_consumers_the_data_plane_is_closed_and_says_so() -> None:
    table = table_for(
        {"services": SERVICES, "rules": [{"name": "r", "targets": [{"service": "a"}]}]}
    )
    assert table.anonymous is None
    assert table.authenticate(None) is None and table.authenticate("sk-anything") is None
    assert any("refuses every request (401)" in w for w in table.warnings)


def test_auth_none_opens_a_gateway_only_while_it_has_no_consumers() -> None:
    rules = [{"name": "r", "targets": [{"service": "a"}]}]
    table = table_for({"services": SERVICES, "rules": rules, "auth": "none"})
    anonymous = table.authenticate(None)
    assert anonymous is not None and anonymous.name == "anonymous"
    assert table.authenticate("sk-anything") is anonymous
    assert any("without a key (authentication off)" in w for w in table.warnings)
    consumers = [{"name": "t", "keys": ["sk-plain-text-key"]}]
    table = table_for(
        {"services": SERVICES, "rules": rules, "auth": "none", "consumers": consumers}
    )
    assert table.anonymous is None and table.authenticate(None) is None
    assert any("changes nothing" in w for w in table.warnings)


def test_unsupported_provider_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluicegate.providers.registry import ADAPTERS

    # Every provider has its adapter now; pretend one has not landed.
    monkeypatch.setitem(ADAPTERS, "bedrock", None)
    table = table_for(
        {
            "services": [{"name": "x", "provider": "bedrock", "host": "h"}],
            "rules": [{"name": "r", "targets": [{"service": "x"}]}],
        }
    )
    assert any("'bedrock' is not supported yet" in w for w in table.warnings)


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ({"provider": "openai"}, "https://api.openai.com/v1"),
        ({"provider": "groq"}, "https://api.groq.com/openai/v1"),
        ({"provider": "ollama"}, "http://127.0.0.1:11434/v1"),
        ({"provider": "ollama", "host": "gpu-box", "protocol": "http"}, "http://gpu-box/v1"),
        (
            {
                "provider": "bedrock",
                "credentials": {
                    "aws_access_key_id": "AKIA",
                    "aws_secret_access_key": "s",
                    "aws_region": "eu-west-1",
                },
            },
            "https://bedrock-runtime.eu-west-1.amazonaws.com",
        ),
        (
            {"provider": "vertex", "project": "p", "location": "europe-west4"},
            "https://europe-west4-aiplatform.googleapis.com/v1",
        ),
    ],
)
def test_catalog_defaults(service: dict[str, Any], url: str) -> None:
    table = table_for(
        {
            "services": [{"name": "s", **service}],
            "rules": [{"name": "r", "targets": [{"service": "s"}]}],
        }
    )
    service = table.services["s"]
    assert tuple(t.url + service.path for t in service.pool.targets) == (url,)
