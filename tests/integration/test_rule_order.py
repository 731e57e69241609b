"""Rule order through the Admin API of a running gateway: a rule that an earlier rule
already takes every request of is refused (409) naming it, ``priority`` puts a rule
first, and a rule becomes a catch-all only when it says so (docs/routing.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

ADMIN_KEY = "adm-rule-order-key-0001"
EMAIL = "jane.doe@example.com"


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"admin_key": ADMIN_KEY, "store": f"sqlite:///{tmp_path / 'store.db'}"},
        "services": [openai_service("oai", fake_openai.port, retries=0)],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["fake-order-4o", "fake-order-mini"]},
                "targets": [{"service": "oai"}],
                "fallback_on": [],
            },
            {
                "name": "others",
                "match": {"models": ["fake-order-*"]},
                "targets": [{"service": "oai"}],
                "fallback_on": [],
            },
        ],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def admin(gateway: RunningGateway, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        gateway.url + "/admin" + path,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json=body,
        timeout=20,
    )


def sent_upstream(gateway: RunningGateway, fake: FakeOpenAI, model: str) -> str:
    """What the upstream received as the user's message, for a request of ``model``."""
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": f"mail {EMAIL}"}]},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    received = [r for r in fake.requests if r["body"].get("model") == model]
    content: str = received[-1]["body"]["messages"][-1]["content"]
    return content


def pii_rule(**extra: Any) -> dict[str, Any]:
    return {
        "name": "pii-chat",
        "match": {"models": ["fake-order-4o"]},
        "targets": [{"service": "oai"}],
        "fallback_on": [],
        "policies": {"guardrails": {"pii": "redact"}},
        **extra,
    }


def test_a_rule_an_earlier_rule_takes_is_refused_and_priority_puts_it_first(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    # Before: 201, and its guardrail never ran (the file's rule took the model first).
    shadowed = admin(gateway, "POST", "/rules", pii_rule())
    assert shadowed.status_code == 409, shadowed.text
    error = shadowed.json()["error"]
    assert error["code"] == "rule_shadowed"
    assert "rules/pii-chat can never match" in error["message"]
    assert "rule 'chat' (priority 100)" in error["message"]
    assert EMAIL in sent_upstream(gateway, fake_openai, "fake-order-4o")

    first = admin(gateway, "POST", "/rules", pii_rule(priority=50))
    assert first.status_code == 201, first.text
    assert first.json()["priority"] == 50 and first.json()["position"] == 1
    assert EMAIL not in sent_upstream(gateway, fake_openai, "fake-order-4o")
    assert EMAIL in sent_upstream(gateway, fake_openai, "fake-order-mini")  # still "chat"
    shown = {r["name"]: r for r in admin(gateway, "GET", "/rules").json()["data"]}
    assert [
        (shown[n]["priority"], shown[n]["position"]) for n in ("pii-chat", "chat", "others")
    ] == [
        (50, 1),
        (100, 2),
        (100, 3),
    ]
    assert admin(gateway, "GET", "/health").json()["issues"] == []

    # Moving it back behind "chat" would shadow it again.
    back = admin(gateway, "PATCH", "/rules/pii-chat", {"priority": 150})
    assert back.status_code == 409 and "rule 'chat'" in back.json()["error"]["message"]


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        # The same glob as an earlier rule.
        ({"match": {"models": ["fake-order-*"]}}, ["rules/late can never match", "rule 'others'"]),
        # An earlier rule that asks for no header takes the requests with one too.
        (
            {"match": {"models": ["fake-order-4o"], "headers": {"x-team": "a"}}},
            ["rules/late can never match", "rule 'chat'"],
        ),
        # Ties go to the file's rule, then the store's by creation.
        (
            {"match": {"models": ["fake-order-4o"]}, "priority": 100},
            ["rules/late can never match", "rule 'chat' (priority 100)"],
        ),
        # A catch-all tried first would leave nothing to the file's rules.
        ({"catch_all": True, "priority": 1}, ["can never match", "store rule 'late' (priority 1)"]),
    ],
)
def test_certain_shadowing_is_refused(
    gateway: RunningGateway, rule: dict[str, Any], said: list[str]
) -> None:
    refused = admin(
        gateway, "POST", "/rules", {"name": "late", "targets": [{"service": "oai"}], **rule}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "rule_shadowed"
    for part in said:
        assert part in refused.json()["error"]["message"]
    assert admin(gateway, "GET", "/rules/late").status_code == 404


def test_uncertain_cases_are_taken(gateway: RunningGateway) -> None:
    # A glob inside another glob: undecidable in general, so not refused.
    narrower = {"name": "narrow", "match": {"models": ["fake-order-x*"]}}
    # A model of its own besides one "chat" takes: it still matches that one.
    mixed = {"name": "mixed", "match": {"models": ["fake-order-4o", "mixed-model"]}}
    # A catch-all after everything, said as such.
    last = {"name": "last", "catch_all": True, "priority": 1000}
    for body in (narrower, mixed, last):
        created = admin(gateway, "POST", "/rules", {**body, "targets": [{"service": "oai"}]})
        assert created.status_code == 201, created.text
    assert gateway.runtime.table.describe()["rules"] == [
        "chat",
        "others",
        "narrow",
        "mixed",
        "last",
    ]
    # Nothing is left for a rule after the catch-all.
    after = {"name": "after", "match": {"models": ["zzz"]}, "priority": 2000}
    refused = admin(gateway, "POST", "/rules", {**after, "targets": [{"service": "oai"}]})
    assert refused.status_code == 409 and "rule 'last'" in refused.json()["error"]["message"]


def test_a_rule_becomes_a_catch_all_only_when_it_says_so(gateway: RunningGateway) -> None:
    body = {"name": "side", "match": {"models": ["side"]}, "targets": [{"service": "oai"}]}
    assert admin(gateway, "POST", "/rules", body).status_code == 201
    # Before: 200, and "side" took every model no earlier rule had.
    dropped = admin(gateway, "PATCH", "/rules/side", {"match": None})
    assert dropped.status_code == 422, dropped.text
    assert dropped.json()["error"]["issues"][0]["path"] == "match.models"
    assert "catch_all: true" in dropped.json()["error"]["issues"][0]["message"]
    forgot = admin(gateway, "POST", "/rules", {"name": "bare", "targets": [{"service": "oai"}]})
    assert forgot.status_code == 422
    assert admin(gateway, "GET", "/rules/side").json()["match"]["models"] == ["side"]

    said = admin(gateway, "PATCH", "/rules/side", {"match": None, "catch_all": True})
    assert said.status_code == 200, said.text
    assert said.json()["catch_all"] is True and said.json()["match"]["models"] == []
    # What a GET shows can be PUT back as it is.
    put = admin(gateway, "PUT", "/rules/side", said.json())
    assert put.status_code == 200, put.text
    star = {"name": "star", "match": {"models": ["*"]}, "targets": [{"service": "oai"}]}
    assert admin(gateway, "POST", "/rules", {**star, "priority": 999}).status_code == 409
