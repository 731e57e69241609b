"""deploy/grafana/sluicegate.json queries only metrics that a running gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "sluicegate.json"
# What the dashboard must show (the brief of issue #10).
COVERED = {
    "sluicegate_requests_total",
    "sluicegate_request_duration_seconds_bucket",
    "sluicegate_overhead_seconds_bucket",
    "gen_ai_server_time_to_first_token_seconds_bucket",
    "sluicegate_tokens_total",
    "sluicegate_cost_usd_total",
    "sluicegate_ratelimited_total",
    "sluicegate_upstream_healthy",
    "sluicegate_upstream_attempts_total",
    "sluicegate_audit_queue_depth",
    "sluicegate_audit_dropped_rows_total",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values, legends)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for found in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[found.end() :].lstrip()
        if rest.startswith("(") or found.group() in _KEYWORDS:
            continue  # a function
        names.add(found.group())
    return names


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query["query"])
            assert match, query
            found.append(match.group(1))
    return found


def exported(text: str) -> set[str]:
    """Every series name the exposition can hold: samples seen, and the suffixes of each
    declared metric (a labelled counter has no sample until it moves)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "counter":  # the text format declares a counter by its sample's name
                name = name.removesuffix("_total")
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",),
            }[kind]
            names.update(name + suffix for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_metric_names_of_an_expression() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, service) (rate(a_bucket{gateway=~"$g"}'
        "[$__rate_interval]))) / on (x) b_total offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_the_dashboard_reads_only_exported_metrics(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    gateway = RunningGateway(
        {
            "gateway": {"store": f"sqlite:///{tmp_path / 'a.db'}"},
            "audit": {"spill_path": str(tmp_path / "spill.jsonl")},
            "services": [{"name": "mock", "provider": "mock"}],
            "rules": [
                {"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "mock"}]}
            ],
            "consumers": [{"name": "a", "keys": [KEY]}],
        }
    ).start()
    try:
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert answer.status_code == 200
        text = httpx.get(gateway.url + "/metrics").text
    finally:
        gateway.stop()
    available = exported(text)
    assert "sluicegate_requests_total" in available and "sluicegate_audit_queue_depth" in available
    used: set[str] = set()
    for expr in expressions(dashboard):
        names = metric_names(expr)
        assert names, expr
        assert names <= available, (expr, names - available)
        used |= names
    assert used >= COVERED, COVERED - used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
