"""Read a YAML config: ``${VAR}`` interpolation, validation, reference checks.

Every problem is reported as ``path: message`` (``rules[1].targets[0].service:
unknown service 'claud'``) and all of them at once, so that one run of
``sluicegate config validate`` shows everything to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluicegate.config.auth import shared_token_issues
from sluicegate.config.ids import entity_id
from sluicegate.config.mcp import mcp_reference_issues
from sluicegate.config.model import Config, Consumer, Group
from sluicegate.config.order import order_issues
from sluicegate.config.route_checks import group_issues, model_issues
from sluicegate.errors import ConfigError

_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Loaded:
    config: Config
    warnings: list[str] = field(default_factory=list)
    source: str = "<config>"


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def references(value: str) -> list[str]:
    """The variables a string reads (``$${VAR}`` is a literal, not a reference)."""
    return [m.group(2) for m in _VAR.finditer(value) if not m.group(1)]


def interpolate(
    node: Any,
    env: Mapping[str, str],
    warnings: list[str],
    loc: tuple[Any, ...] = (),
    unset: dict[str, list[str]] | None = None,
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$${VAR}`` stays literal.
    ``unset`` collects, by path, the variables that were read empty."""
    if isinstance(node, str):
        if "${" not in node:
            return node

        def replace(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)[1:]
            name, default = m.group(2), m.group(3)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                where = format_path(loc)
                warnings.append(f"{where}: environment variable {name} is not set")
                if unset is not None:
                    unset.setdefault(where, []).append(name)
                return ""
            return value

        return _VAR.sub(replace, node)
    if isinstance(node, dict):
        return {k: interpolate(v, env, warnings, (*loc, k), unset) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, warnings, (*loc, i), unset) for i, v in enumerate(node)]
    return node


def _blame_unset(issues: list[str], unset: dict[str, list[str]]) -> list[str]:
    """Issues at a path whose variable was unset say so first: "must have at least 8
    characters" alone would hide that the value is empty because of the environment."""
    first: list[str] = []
    rest: list[str] = []
    for issue in issues:
        path, _, message = issue.partition(": ")
        names = unset.get(path)
        if names is None:
            rest.append(issue)
            continue
        what = ", ".join(names)
        verb = "is" if len(names) == 1 else "are"
        first.append(
            f"{path}: environment variable {what} {verb} not set, so it is empty ({message})"
        )
    return first + rest


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "too_short": "must not be empty",
}


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _MESSAGES:
        if kind == "too_short" and ctx.get("min_length", 1) > 1:
            return f"must have at least {ctx['min_length']} characters"
        return _MESSAGES[kind]
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else (f"must have at least {ctx.get('min_length')} characters")
        )
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt'):g}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge'):g}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le'):g}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        return "may hold only letters, digits and . _ : @ / - (starting with a letter or digit)"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def validation_issues(exc: ValidationError) -> list[str]:
    issues = []
    for err in exc.errors():
        # Unions and validators add their own names to the location; keep the data path.
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        )
        issues.append(f"{format_path(loc)}: {_message(err)}")
    return issues


def _items(data: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(kind)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _names(items: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(i, item["name"]) for i, item in items if isinstance(item.get("name"), str)]


def _rule_steps(rule: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """Every list of targets a rule holds, by its path: its own, its fallbacks, and those of
    its routes and semantic routes."""

    def listed(node: Any, key: str) -> list[Any]:
        value = node.get(key) if isinstance(node, dict) else None
        return value if isinstance(value, list) else []

    out = [("targets", listed(rule, "targets")), ("fallbacks", listed(rule, "fallbacks"))]
    for j, route in enumerate(listed(rule, "routes")):
        out.append((f"routes[{j}].targets", listed(route, "targets")))
    for j, route in enumerate(listed(rule.get("semantic"), "routes")):
        out.append((f"semantic.routes[{j}].targets", listed(route, "targets")))
    return out


def check_references(data: dict[str, Any]) -> list[str]:
    """Cross-entity checks that one model alone cannot make.

    They run on the raw document so that they are reported together with
    the schema errors, whatever else is wrong. Each gateway of ``gateways:``
    is checked on its own: its entities see only each other.
    """
    issues = _check_entities(data) + model_issues(data.get("models"))
    gateway = data.get("gateway")
    default = gateway.get("name", "default") if isinstance(gateway, dict) else "default"
    names = {default}
    hosts: dict[str, str] = {}
    for i, tenant in _items(data, "gateways"):
        name = tenant.get("name")
        if isinstance(name, str):
            if name in names:
                issues.append(f"gateways[{i}].name: duplicate gateway name '{name}'")
            names.add(name)
        listed = tenant.get("hosts")
        for j, host in enumerate(listed if isinstance(listed, list) else []):
            if not isinstance(host, str):
                continue
            other = hosts.setdefault(host.lower().rstrip("."), str(name))
            if other != name:
                issues.append(
                    f"gateways[{i}].hosts[{j}]: '{host}' already selects gateway '{other}'"
                )
        issues += [f"gateways[{i}].{issue}" for issue in _check_entities(tenant)]
    return issues


def _check_entities(data: dict[str, Any]) -> list[str]:
    issues: list[str] = []

    def unique(kind: str) -> set[str]:
        seen: set[str] = set()
        for i, name in _names(_items(data, kind)):
            if name in seen:
                issues.append(f"{kind}[{i}].name: duplicate name '{name}'")
            seen.add(name)
        return seen

    upstreams = unique("upstreams")
    services = unique("services")
    rules = unique("rules")
    groups = unique("groups")
    unique("consumers")
    issues += mcp_reference_issues(data)

    upstream_ids = {entity_id("upstream", name) for name in upstreams} | upstreams
    for i, svc in _items(data, "services"):
        name = svc.get("upstream")
        if isinstance(name, str) and name not in upstreams:
            issues.append(f"services[{i}].upstream: unknown upstream '{name}'")
        uid = svc.get("upstream_id")
        if isinstance(uid, str) and uid not in upstream_ids:
            issues.append(f"services[{i}].upstream_id: unknown upstream id '{uid}'")
    for i, rule in _items(data, "rules"):
        for part, steps in _rule_steps(rule):
            for j, step in enumerate(steps):
                service = step.get("service") if isinstance(step, dict) else None
                if isinstance(service, str) and service not in services:
                    issues.append(f"rules[{i}].{part}[{j}].service: unknown service '{service}'")
        issues += [f"rules[{i}].{issue}" for issue in group_issues(rule, groups)]
    for i, group in _items(data, "groups"):
        allowed = group.get("rules")
        for j, rule_name in enumerate(allowed if isinstance(allowed, list) else []):
            if isinstance(rule_name, str) and rule_name not in rules:
                issues.append(f"groups[{i}].rules[{j}]: unknown rule '{rule_name}'")
    seen_keys: dict[str, str] = {}
    seen_subjects: dict[str, str] = {}  # a certificate name stands for one consumer only
    for i, consumer in _items(data, "consumers"):
        member_of = consumer.get("groups")
        for j, group_name in enumerate(member_of if isinstance(member_of, list) else []):
            if isinstance(group_name, str) and group_name not in groups:
                issues.append(f"consumers[{i}].groups[{j}]: unknown group '{group_name}'")
        allowed = consumer.get("rules")
        for j, rule_name in enumerate(allowed if isinstance(allowed, list) else []):
            if isinstance(rule_name, str) and rule_name not in rules:
                issues.append(f"consumers[{i}].rules[{j}]: unknown rule '{rule_name}'")
        native = consumer.get("passthrough")
        for j, service in enumerate(native if isinstance(native, list) else []):
            if isinstance(service, str) and service not in services:
                issues.append(f"consumers[{i}].passthrough[{j}]: unknown service '{service}'")
        keys = consumer.get("keys")
        for j, key in enumerate(keys if isinstance(keys, list) else []):
            if not isinstance(key, str) or not key:
                continue
            other = seen_keys.get(key)
            if other is not None:
                issues.append(
                    f"consumers[{i}].keys[{j}]: this key is already held by consumer '{other}'"
                )
            seen_keys[key] = str(consumer.get("name"))
        subjects = consumer.get("mtls_subjects")
        for j, subject in enumerate(subjects if isinstance(subjects, list) else []):
            if not isinstance(subject, str):
                continue
            holder = seen_subjects.setdefault(subject, str(consumer.get("name")))
            if holder != consumer.get("name"):
                issues.append(
                    f"consumers[{i}].mtls_subjects[{j}]: '{subject}' already names consumer "
                    f"'{holder}'"
                )
    return issues


def allow_lists(consumers: list[Consumer], groups: list[Group]) -> list[list[str]]:
    """The ``rules`` lists that narrow who may use a rule (see ``config.order``)."""
    return [c.rules for c in consumers if c.rules is not None] + [
        g.rules for g in groups if g.rules is not None
    ]


def parse_config(
    raw: Any, env: Mapping[str, str] | None = None, source: str = "<config>"
) -> Loaded:
    """Validate an already-parsed YAML/JSON document."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{source}: the config must be a mapping with gateway, services, rules, ..."]
        )
    warnings: list[str] = []
    unset: dict[str, list[str]] = {}
    data = interpolate(raw, os.environ if env is None else env, warnings, unset=unset)
    try:
        return validate_config(data, warnings, source)
    except ConfigError as exc:
        if not unset:
            raise
        raise ConfigError(_blame_unset(exc.issues, unset)) from None


def validate_config(
    data: dict[str, Any],
    warnings: list[str] | None = None,
    source: str = "<config>",
    check_order: bool = True,
) -> Loaded:
    """Validate a document whose strings are final (no ``${VAR}`` interpolation).

    The Admin API builds its candidates with this: values written through the API
    are literal, and file entities were interpolated when the file was read; it
    checks the order of rules itself (``check_order=False``), to say who is at fault.
    """
    issues = check_references(data)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc) + issues) from None
    issues += shared_token_issues(
        [("auth.jwt", config.gateway.name, config.auth.jwt)]
        + [(f"gateways[{i}].auth.jwt", t.name, t.auth.jwt) for i, t in enumerate(config.gateways)]
    )
    if check_order:
        issues += order_issues(config.rules, allow_lists(config.consumers, config.groups))
        for i, t in enumerate(config.gateways):
            issues += order_issues(t.rules, allow_lists(t.consumers, t.groups), f"gateways[{i}].")
    if issues:
        raise ConfigError(issues)
    return Loaded(config=config, warnings=list(warnings or []), source=source)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Loaded:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file ({exc.strerror or exc})"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    return parse_config(raw, env, source=str(path))
