from __future__ import annotations

import copy
from typing import Any

import pytest

from sluicegate.config.durations import format_duration, parse_duration
from sluicegate.config.load import interpolate, parse_config
from sluicegate.errors import ConfigError

BASE: dict[str, Any] = {
    "upstreams": [{"name": "pool", "targets": [{"url": "http://10.0.0.5:8000", "weight": 3}]}],
    "services": [
        {
            "name": "openai",
            "provider": "openai",
            "host": "api.openai.com",
            "credentials": {"header_name": "Authorization", "header_value": "Bearer x"},
        },
        {"name": "claude", "provider": "anthropic", "host": "api.anthropic.com"},
        {"name": "local", "type": "upstream", "provider": "openai-compatible", "upstream": "pool"},
    ],
    "rules": [
        {
            "name": "chat",
            "match": {"models": ["chat"]},
            "targets": [
                {"service": "openai", "model": "gpt-4o-mini", "weight": 90},
                {"service": "claude", "model": "claude-haiku-4-5", "weight": 10},
            ],
            "fallbacks": [{"service": "local", "model": "llama"}],
        },
        {
            "name": "embed",
            "match": {"models": ["text-embedding-*"]},
            "targets": [{"service": "openai"}],
        },
    ],
    "consumers": [{"name": "team-a", "keys": ["sk-team-a-123456"], "rules": ["chat"]}],
}


def config_with(path: str, value: Any) -> dict[str, Any]:
    """A copy of BASE with one value set at a dotted path such as rules.1.targets.0.service."""
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def issues_of(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=env or {})
    return info.value.issues


def test_the_base_config_is_valid() -> None:
    loaded = parse_config(BASE, env={})
    assert [s.name for s in loaded.config.services] == ["openai", "claude", "local"]
    assert loaded.config.services[0].retries == 1
    assert loaded.config.rules[0].fallback_on == [429, "5xx", "timeout", "connect"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "rules.0.targets.1.service",
            "claud",
            "rules[0].targets[1].service: unknown service 'claud'",
        ),
        (
            "rules.0.fallbacks.0.service",
            "locl",
            "rules[0].fallbacks[0].service: unknown service 'locl'",
        ),
        ("services.2.upstream", "pool2", "services[2].upstream: unknown upstream 'pool2'"),
        ("consumers.0.rules", ["chat", "embedd"], "consumers[0].rules[1]: unknown rule 'embedd'"),
        ("rules.1.targets", [], "rules[1].targets: must not be empty"),
        ("upstreams.0.targets", [], "upstreams[0].targets: must not be empty"),
        ("rules.0.targets.0.weight", 0, "rules[0].targets[0].weight: must be greater than 0"),
        ("rules.0.targets.0.weight", -5, "rules[0].targets[0].weight: must be greater than 0"),
        (
            "upstreams.0.targets.0.weight",
            0,
            "upstreams[0].targets[0].weight: must be greater than 0",
        ),
        ("services.1.name", "openai", "services[1].name: duplicate name 'openai'"),
        ("services.0.provider", "openia", "services[0].provider: 'openia' is not a provider"),
        ("services.0.timeout", "soon", "services[0].timeout: 'soon' is not a duration"),
        ("services.0.retries", -1, "services[0].retries: must be at least 0"),
        ("services.0.colour", "blue", "services[0].colour: unknown field"),
        ("rules.0.fallback_on", ["5xx", "sometimes"], "rules[0].fallback_on: 'sometimes' is not"),
        ("rules.0.fallback_on", [200], "rules[0].fallback_on: 200 is not an HTTP error status"),
        (
            "upstreams.0.targets.0.url",
            "10.0.0.5:8000",
            "upstreams[0].targets[0].url: '10.0.0.5:8000' is not",
        ),
        ("consumers.0.keys", ["short"], "consumers[0].keys[0]: must have at least 8 characters"),
        ("gateway", {"listen": "8080"}, "gateway.listen: must be host:port"),
    ],
)
def test_each_error_names_its_path(path: str, value: Any, expected: str) -> None:
    issues = issues_of(config_with(path, value))
    assert any(issue.startswith(expected) for issue in issues), issues


def test_missing_required_fields() -> None:
    data = copy.deepcopy(BASE)
    del data["services"][0]["provider"]
    del data["rules"][0]["targets"]
    issues = issues_of(data)
    assert "services[0].provider: required" in issues
    assert "rules[0].targets: required" in issues


def test_service_shape_rules() -> None:
    endpoint_without_host = config_with(
        "services.0", {"name": "x", "provider": "openai-compatible"}
    )
    assert any("needs a host" in i for i in issues_of(endpoint_without_host))
    upstream_without_pool = config_with(
        "services.2", {"name": "local", "type": "upstream", "provider": "openai"}
    )
    assert any("needs upstream" in i for i in issues_of(upstream_without_pool))
    half_credentials = config_with("services.0.credentials", {"header_name": "Authorization"})
    assert any("header_name and header_value go together" in i for i in issues_of(half_credentials))


def test_api_responses_is_for_openai_and_azure() -> None:
    claude = config_with("services.1.api", "responses")
    assert any("api: responses is for providers openai and azure" in i for i in issues_of(claude))
    assert any("api" in i for i in issues_of(config_with("services.0.api", "assistants")))
    loaded = parse_config(config_with("services.0.api", "responses"), env={})
    assert loaded.config.services[0].api == "responses"


def test_all_issues_are_reported_at_once() -> None:
    data = config_with("rules.0.targets.1.service", "claud")
    data["consumers"][0]["rules"] = ["nope"]
    assert len(issues_of(data)) == 2


def test_duplicate_keys_across_consumers() -> None:
    data = copy.deepcopy(BASE)
    data["consumers"].append({"name": "team-b", "keys": ["sk-team-a-123456"]})
    assert any("already held by consumer 'team-a'" in i for i in issues_of(data))


def test_upstream_id_reference() -> None:
    from sluicegate.config.ids import entity_id

    data = config_with(
        "services.2",
        {
            "name": "local",
            "type": "upstream",
            "provider": "openai",
            "upstream_id": entity_id("upstream", "pool"),
        },
    )
    parse_config(data, env={})
    data["services"][2]["upstream_id"] = "0000"
    assert any("unknown upstream id" in i for i in issues_of(data))


def test_interpolation() -> None:
    warnings: list[str] = []
    env = {"KEY": "secret", "EMPTY": ""}
    data = {
        "a": "Bearer ${KEY}",
        "b": "${MISSING:-fallback}",
        "c": "${EMPTY:-used-when-empty}",
        "d": ["x-${KEY}-y", {"e": "$${KEY}"}],
        "f": "${MISSING}",
        "g": 5,
    }
    out = interpolate(data, env, warnings)
    assert out == {
        "a": "Bearer secret",
        "b": "fallback",
        "c": "used-when-empty",
        "d": ["x-secret-y", {"e": "${KEY}"}],
        "f": "",
        "g": 5,
    }
    assert warnings == ["f: environment variable MISSING is not set"]


def test_interpolation_in_a_config() -> None:
    data = config_with("services.0.credentials.header_value", "Bearer ${OPENAI_API_KEY}")
    data["services"][0]["port"] = "${PORT:-8443}"
    loaded = parse_config(data, env={"OPENAI_API_KEY": "sk-live"})
    svc = loaded.config.services[0]
    assert svc.credentials is not None and svc.credentials.header_value == "Bearer sk-live"
    assert svc.port == 8443
    # Secrets never show in a printed model.
    assert "sk-live" not in repr(loaded.config)


def test_unset_variable_is_a_warning_and_an_unset_key_an_error() -> None:
    data = config_with("consumers.0.keys", ["${TEAM_KEY}"])
    issues = issues_of(data)
    assert (
        "consumers[0].keys[0]: environment variable TEAM_KEY is not set, so it is empty"
        " (must have at least 8 characters)"
    ) in issues
    loaded = parse_config(config_with("gateway", {"admin_key": "${ADMIN}"}), env={})
    assert loaded.config.gateway.admin_key is None
    assert loaded.warnings == ["gateway.admin_key: environment variable ADMIN is not set"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        (10, 10),
        ("1.5", 1.5),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "1h 5", "-3s", True])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(0.25) == "250ms"
    assert format_duration(1) == "1s"
    assert format_duration(360) == "6m0s"
    assert format_duration(3723) == "1h2m3s"


def test_a_services_healthchecks_are_passive_and_only_on_an_endpoint() -> None:
    passive = {"passive": {"failures": 2, "cooldown": "5s"}}
    loaded = parse_config(config_with("services.0.healthchecks", passive), env={})
    checks = loaded.config.services[0].healthchecks
    assert checks is not None and checks.passive is not None and checks.passive.failures == 2
    active = config_with("services.0.healthchecks", {"active": {"path": "/health"}})
    assert any("passive checks only" in i for i in issues_of(active)), issues_of(active)
    on_upstream = config_with("services.2.healthchecks", passive)
    issues = issues_of(on_upstream)
    assert any(i.startswith("services[2]") and "upstream's healthchecks" in i for i in issues)
