"""Rule order (``priority``, then the order they are listed) and rules that can never match."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.config.load import parse_config
from sluicegate.config.model import Rule
from sluicegate.config.order import match_order, shadows
from sluicegate.errors import ConfigError
from sluicegate.routing.compile import compile_config


def rule(name: str, models: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "targets": [{"service": "m"}], **extra}
    if models is not None:
        doc["match"] = {**doc.get("match", {}), "models": models}
    return doc


def rules(*docs: dict[str, Any]) -> list[Rule]:
    return [Rule.model_validate(doc) for doc in docs]


def found(docs: list[dict[str, Any]], lists: list[list[str]] | None = None) -> dict[str, list[str]]:
    parsed = rules(*docs)
    return {
        parsed[s.rule].name: [parsed[i].name for i in s.by] for s in shadows(parsed, lists or [])
    }


def test_lower_priority_first_ties_in_list_order() -> None:
    parsed = rules(
        rule("a", ["x"]),
        rule("b", ["y"], priority=50),
        rule("c", ["z"]),
        rule("d", ["w"], priority=-1),
    )
    assert [parsed[i].name for i in match_order(parsed)] == ["d", "b", "a", "c"]


def test_the_compiled_table_tries_rules_in_priority_order() -> None:
    loaded = parse_config(
        {
            "auth": "none",
            "services": [{"name": "m", "provider": "mock"}],
            "rules": [rule("wide", ["gpt-*"]), rule("narrow", ["gpt-4o"], priority=10)],
        },
        env={},
    )
    table = compile_config(loaded.config)
    assert [r.name for r in table.candidates("gpt-4o")] == ["narrow", "wide"]
    assert [r.name for r in table.candidates("gpt-3")] == ["wide"]
    assert table.describe()["rules"] == ["narrow", "wide"]


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        # An exact name an earlier exact name or glob matches.
        ([rule("a", ["gpt-4o", "x"]), rule("b", ["gpt-4o"])], {"b": ["a"]}),
        ([rule("a", ["gpt-*"]), rule("b", ["gpt-4o", "gpt-4o-mini"])], {"b": ["a"]}),
        # Each of its models matched by some earlier rule: both are named.
        ([rule("a", ["x"]), rule("b", ["y"]), rule("c", ["x", "y"])], {"c": ["a", "b"]}),
        # A glob identical to an earlier one.
        ([rule("a", ["gpt-*"]), rule("b", ["gpt-*"])], {"b": ["a"]}),
        # Anything after an unconditional catch-all (no models, or "*").
        ([rule("a"), rule("b", ["x"])], {"b": ["a"]}),
        ([rule("a", ["*"]), rule("b", ["gpt-4*"]), rule("c")], {"b": ["a"], "c": ["a"]}),
        # Priority decides what comes first, not the list.
        ([rule("a", ["x"]), rule("b", ["x"], priority=99)], {"a": ["b"]}),
        # Not certain, so allowed: a glob inside another glob, one model left over,
        # a catch-all after specific rules.
        ([rule("a", ["gpt-*"]), rule("b", ["gpt-4*"])], {}),
        ([rule("a", ["x"]), rule("b", ["x", "y"])], {}),
        ([rule("a", ["x"]), rule("b")], {}),
        # Conditions: the earlier rule covers only if it asks no more than the later one.
        ([rule("a", ["x"], match={"paths": ["/chat/completions"]}), rule("b", ["x"])], {}),
        ([rule("a", ["x"]), rule("b", ["x"], match={"paths": ["/v1/embeddings"]})], {"b": ["a"]}),
        (
            [
                rule("a", ["x"], match={"paths": ["/v1/chat/completions", "/v1/embeddings"]}),
                rule("b", ["x"], match={"paths": ["/chat/completions"]}),
            ],
            {"b": ["a"]},
        ),
        ([rule("a", ["x"], match={"headers": {"x-team": "a"}}), rule("b", ["x"])], {}),
        (
            [
                rule("a", ["x"], match={"headers": {"X-Team": "a"}}),
                rule("b", ["x"], match={"headers": {"x-team": "a", "x-env": "prod"}}),
            ],
            {"b": ["a"]},
        ),
    ],
)
def test_a_rule_that_can_never_match(
    docs: list[dict[str, Any]], expected: dict[str, list[str]]
) -> None:
    assert found(docs) == expected


def test_a_rule_some_consumer_reaches_only_through_it_is_not_shadowed() -> None:
    docs = [rule("a", ["x"]), rule("b", ["x"])]
    assert found(docs, [["a", "b"]]) == {"b": ["a"]}
    assert found(docs, [["b"]]) == {}  # this consumer (group, key) may not use a: it gets b


def test_config_validate_names_both_rules() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {
                "services": [{"name": "m", "provider": "mock"}],
                "rules": [rule("chat", ["gpt-4o", "gpt-4o-mini"]), rule("pii", ["gpt-4o"])],
            },
            env={},
        )
    assert refused.value.issues == [
        "rules[1]: can never match: every model it names is matched first by rule 'chat' "
        "(priority 100); give it a priority below 100 to try it first"
    ]
    # Tenants are checked on their own.
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {
                "gateways": [
                    {
                        "name": "t",
                        "services": [{"name": "m", "provider": "mock"}],
                        "rules": [rule("all", catch_all=True), rule("late", ["x"])],
                    }
                ]
            },
            env={},
        )
    assert refused.value.issues[0].startswith("gateways[0].rules[1]: can never match")


def test_catch_all_says_what_it_is() -> None:
    assert Rule.model_validate(rule("a", catch_all=True)).catch_all
    assert Rule.model_validate(rule("a", ["*"], catch_all=True)).catch_all
    with pytest.raises(ValueError, match="catch_all"):
        Rule.model_validate(rule("a", ["gpt-4o"], catch_all=True))
