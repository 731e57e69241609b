"""Conditional ``routes:`` through a running gateway: each condition kind picks its
target set (first match wins, the rule's targets otherwise), the budget share included;
invalid conditions are path-named errors at ``sluicegate config validate``."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import KEY, OTHER_KEY, openai_service, settled
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

THIRD_KEY = "sk-test-team-c-0003"
PLAIN_KEY = "sk-test-team-d-0004"  # no group, no budget
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def _window(start_offset: int, hours: int) -> str:
    now = dt.datetime.now(dt.UTC).hour
    return f"{(now + start_offset) % 24:02d}-{(now + start_offset + hours) % 24:02d}"


def route(name: str, when: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "when": when, "targets": [{"service": name, "model": "gpt-4o"}]}


ROUTES = [
    route("long", {"prompt_tokens": {"gt": 1000}}),
    route("vision", {"has_images": True}),
    route("tools", {"has_tools": True}),
    route("json", {"json_mode": True}),
    route("header", {"headers": {"x-tier": "gold*"}}),
    route("meta", {"metadata": {"project": "apollo"}}),
    route("user", {"user": ["vip-*", "boss"]}),
    route("closed", {"hours": _window(4, 2)}),  # never now
    route("group", {"group": "research"}),
    route("thrifty", {"budget_used": {"gt": 0.5}}),
    route("consumer", {"consumer": "team-c"}),
    route("daytime", {"hours": _window(-2, 4), "metadata": {"when": "now"}}),
]


@pytest.fixture(scope="module")
def gateway(fake_openai: FakeOpenAI) -> Iterator[RunningGateway]:
    names = [r["name"] for r in ROUTES] + ["default"]
    config = {
        "services": [openai_service(n, fake_openai.port, healthchecks={}) for n in names],
        "groups": [{"name": "research"}],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": [{"service": "default", "model": "gpt-4o-mini"}],
                "routes": ROUTES,
            }
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "groups": ["research"]},
            {"name": "team-b", "keys": [OTHER_KEY], "budget": {"usd": 0.00004, "window": "1d"}},
            {"name": "team-c", "keys": [THIRD_KEY]},
            {"name": "team-d", "keys": [PLAIN_KEY]},
        ],
    }
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def ask(
    gateway: RunningGateway,
    key: str = PLAIN_KEY,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    payload = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], **body}
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response


def chosen(response: httpx.Response) -> tuple[str, str]:
    return response.headers["x-sluicegate-service"], response.headers["x-sluicegate-route"]


@pytest.mark.parametrize(
    ("body", "headers", "service", "why"),
    [
        (
            {"messages": [{"role": "user", "content": "word " * 2000}]},
            {},
            "long",
            "prompt 2.5k > 1k",
        ),
        ({"messages": [{"role": "user", "content": [IMAGE]}]}, {}, "vision", "has images"),
        ({"tools": [TOOL]}, {}, "tools", "has tools"),
        ({"response_format": {"type": "json_object"}}, {}, "json", "json mode"),
        ({}, {"x-tier": "gold-plus"}, "header", "header x-tier"),
        ({"metadata": {"project": "apollo"}}, {}, "meta", "metadata.project ~ apollo"),
        ({"user": "vip-17"}, {}, "user", "user ~ vip-*"),
        ({"user": "boss"}, {}, "user", "user ~ boss"),
        ({"metadata": {"when": "now"}}, {}, "daytime", "metadata.when ~ now, hours"),
        ({}, {"x-tier": "silver"}, "default", "default"),
        ({"metadata": {"project": "gemini"}}, {}, "default", "default"),
    ],
)
def test_each_condition_kind_picks_its_route(
    gateway: RunningGateway, body: dict[str, Any], headers: dict[str, str], service: str, why: str
) -> None:
    got, route = chosen(ask(gateway, headers=headers, **body))
    assert got == service, route
    prefix = "default: " if service == "default" else f"route {service} ({why}"
    assert route.startswith(prefix), route


def test_the_first_matching_route_wins(gateway: RunningGateway) -> None:
    got, route = chosen(ask(gateway, tools=[TOOL], user="vip-1"))
    assert got == "tools", route


def test_consumer_and_group_conditions(gateway: RunningGateway) -> None:
    got, route = chosen(ask(gateway, key=KEY))
    assert (got, route.split(":")[0]) == ("group", "route group (group research)")
    got, route = chosen(ask(gateway, key=THIRD_KEY))
    assert (got, route.split(":")[0]) == ("consumer", "route consumer (consumer team-c)")


def test_a_consumer_past_half_its_budget_is_routed_to_the_thrifty_targets(
    gateway: RunningGateway,
) -> None:
    seen = []
    for _ in range(40):
        response = settled(gateway.url, lambda: ask(gateway, key=OTHER_KEY))
        seen.append(chosen(response))
        if seen[-1][0] == "thrifty":
            break
    assert seen[0][0] == "default", seen
    service, route = seen[-1]
    assert service == "thrifty", seen
    assert route.startswith("route thrifty (budget "), route
    assert "% used > 50%)" in route, route


def test_invalid_conditions_are_path_named_errors_at_config_validate(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = {
        "services": [openai_service("a", fake_openai.port)],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": [{"service": "a"}],
                "strategy": "quickest",
                "routes": [
                    {"when": {"prompt_tokens": {}}, "targets": [{"service": "a"}]},
                    {"when": {"hours": "9 to 5"}, "targets": [{"service": "nowhere"}]},
                    {"when": {"budget_used": {"gt": 80}, "colour": "red"}, "targets": []},
                    {
                        "when": {"group": "ghosts", "timezone": "Mars/Olympus"},
                        "targets": [{"service": "a"}],
                    },
                ],
                "semantic": {"threshold": 2, "routes": []},
            }
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    errors = done.stderr
    for expected in (
        "rules[0].strategy: ",
        "rules[0].routes[0].when.prompt_tokens: give at least one of gt, gte, lt, lte",
        "rules[0].routes[1].when.hours: '9 to 5' is not a time window such as 09-17",
        "rules[0].routes[1].targets[0].service: unknown service 'nowhere'",
        "rules[0].routes[2].when.budget_used: a share of the budget, from 0 to 1",
        "rules[0].routes[2].when.colour: ",
        "rules[0].routes[2].targets: ",
        "rules[0].routes[3].when.group: unknown group 'ghosts'",
        "rules[0].routes[3].when.timezone: 'Mars/Olympus' is not a time zone",
        "rules[0].semantic.threshold: ",
        "rules[0].semantic.routes: ",
    ):
        assert expected in errors, errors


def test_conditions_that_never_or_always_hold_are_errors_at_config_validate(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    target = [{"service": "a"}]
    config = {
        "services": [openai_service("a", fake_openai.port)],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": target,
                "routes": [
                    {"when": {"user": []}, "targets": target},
                    {"when": {"consumer": []}, "targets": target},
                    {"when": {"group": [], "metadata": {}}, "targets": target},
                    {"when": {"prompt_tokens": {"gt": 100, "lt": 50}}, "targets": target},
                    {"when": {"headers": {}}, "targets": target},
                ],
            },
            {
                "name": "twins",
                "match": {"models": ["twins"]},
                "targets": target,
                "routes": [
                    {"name": "r0", "when": {"has_tools": True}, "targets": target},
                    {"name": "r0", "when": {"has_images": True}, "targets": target},
                ],
            },
            {
                "name": "shadowing",
                "match": {"models": ["other"]},
                "targets": target,
                "routes": [
                    {"when": {}, "targets": target},
                    {"when": {"has_images": True}, "targets": target},
                ],
            },
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    errors = done.stderr
    for expected in (
        "rules[0].routes[0].when.user: ",
        "rules[0].routes[1].when.consumer: ",
        "rules[0].routes[2].when.group: ",
        "rules[0].routes[2].when.metadata: ",
        "rules[0].routes[3].when.prompt_tokens: no number is within these bounds",
        "rules[0].routes[4].when.headers: ",
        "rules[1].routes: two routes are named 'r0'",
        "rules[2].routes: routes[0] always holds",
    ):
        assert expected in errors, errors
