"""JWTs stay in their gateway: each gateway has its own ``auth``, a token is accepted only
where its issuer and audience are configured, and its consumer claim names a consumer of
that gateway only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from sluicegate.config.load import parse_config
from sluicegate.errors import ConfigError
from tests.fakes.gateway import RunningGateway

SECRET = "tenant-tokens-shared-secret-0123456789"
ISSUER = "https://idp.tenants.test/"


def token(audience: str, sub: str, issuer: str = ISSUER) -> str:
    claims = {"iss": issuer, "aud": audience, "sub": sub, "exp": int(time.time()) + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _jwt(audience: str | None, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"secret": SECRET, "issuer": ISSUER, **extra}
    if audience is not None:
        settings["audience"] = audience
    return {"jwt": settings}


def _routes(model: str, consumer: str, **extra: Any) -> dict[str, Any]:
    return {
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": [model]}, "targets": [{"service": "mock"}]}],
        "consumers": [{"name": consumer}],
        **extra,
    }


def config(finance_auth: dict[str, Any] | None) -> dict[str, Any]:
    finance = {"name": "finance", **_routes("ledger", "fin-bob")}
    if finance_auth is not None:
        finance["auth"] = finance_auth
    return {
        **_routes("chat", "alice", auth=_jwt("default-app")),
        "gateways": [finance],
    }


def _models(url: str, bearer: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {bearer}"}, timeout=10)


@pytest.fixture
def start() -> Iterator[Any]:
    running: list[RunningGateway] = []

    def go(doc: dict[str, Any]) -> RunningGateway:
        gateway = RunningGateway(doc, keyless=False).start()
        running.append(gateway)
        return gateway

    yield go
    for gateway in running:
        gateway.stop()


def test_a_gateway_without_auth_takes_no_token_of_the_default_gateway(start: Any) -> None:
    gateway = start(config(None))
    assert _models(gateway.url, token("default-app", "alice")).status_code == 200
    finance = f"{gateway.url}/gw/finance"
    # A token for the default gateway whose subject is finance's consumer.
    stolen = _models(finance, token("default-app", "fin-bob"))
    assert stolen.status_code == 401, stolen.text
    assert _models(finance, token("default-app", "alice")).status_code == 401


def test_each_gateway_verifies_its_own_audience_and_maps_its_own_consumers(start: Any) -> None:
    gateway = start(config(_jwt("finance-app")))
    finance = f"{gateway.url}/gw/finance"
    mine = _models(finance, token("finance-app", "fin-bob"))
    assert mine.status_code == 200, mine.text
    assert [m["id"] for m in mine.json()["data"]] == ["ledger"]
    refused = _models(finance, token("default-app", "fin-bob"))  # the other gateway's audience
    assert refused.status_code == 401 and "audience" in refused.json()["error"]["message"]
    foreign = _models(finance, token("finance-app", "alice"))  # a consumer of the other gateway
    assert foreign.status_code == 401
    assert foreign.json()["error"]["code"] == "unknown_consumer"
    assert _models(gateway.url, token("finance-app", "alice")).status_code == 401
    assert _models(gateway.url, token("default-app", "fin-bob")).status_code == 401


def test_two_gateways_may_not_accept_the_same_tokens() -> None:
    for finance_auth in (_jwt(None), _jwt("default-app"), _jwt("default-app", issuer=None)):
        with pytest.raises(ConfigError) as caught:
            parse_config(config(finance_auth), env={})
        issues = "\n".join(caught.value.issues)
        assert "gateways[0].auth.jwt" in issues and "'default'" in issues, issues
    # Another issuer, or another audience, keeps them apart.
    parse_config(config(_jwt("finance-app")), env={})
    parse_config(config(_jwt("default-app", issuer="https://other-idp.test/")), env={})


def test_only_the_default_gateway_grants_the_admin_api() -> None:
    claim = {"admin_claim": {"name": "role", "value": "admin"}}
    with pytest.raises(ConfigError) as caught:
        parse_config(config(_jwt("finance-app", **claim)), env={})
    assert any(
        i.startswith("gateways[0].auth") and "Admin API" in i for i in caught.value.issues
    ), caught.value.issues
