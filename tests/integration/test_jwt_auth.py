"""Bearer JWTs end to end: a JWKS server on loopback, the gateway, the official openai SDK."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import openai
import pytest

from tests.conftest import KEY, eventually
from tests.fakes.gateway import RunningGateway
from tests.fakes.jwks_server import AUDIENCE, ISSUER, JwksServer, SigningKey, claims_for, unsigned

Start = Callable[[dict[str, Any]], RunningGateway]
ADMIN_KEY = "adm-jwt-test-0001"
SECRET = "hs256-shared-secret-for-the-tests-0001"
MESSAGES: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256")


@pytest.fixture(scope="module")
def idp(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(rsa_key, ec_key).start()
    yield server
    server.stop()


def config(jwt_auth: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"name": f"jwt{uuid.uuid4().hex[:8]}", "admin_key": ADMIN_KEY},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [
            {"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "demo"}]},
            {"name": "private", "match": {"models": ["p"]}, "targets": [{"service": "demo"}]},
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY], "rules": ["chat"]},
            {"name": "employees", "rules": ["chat"], "limits": {"requests": 2, "window": "1m"}},
        ],
        "auth": {"jwt": jwt_auth},
    }


def oidc(idp: JwksServer, **extra: Any) -> dict[str, Any]:
    return {
        "jwks_url": idp.jwks_url,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "required_claims": ["exp", "sub"],
        "consumer_claim": "sub",
        "groups_claim": "groups",
        "default_consumer": "employees",
        "admin_claim": {"name": "role", "value": "admin"},
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(idp: JwksServer) -> Iterator[RunningGateway]:
    running = RunningGateway(config(oidc(idp))).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)


def chat(gateway: RunningGateway, token: str, model: str = "m") -> str:
    reply = client(gateway, token).chat.completions.create(model=model, messages=MESSAGES)
    return reply.choices[0].message.content or ""


def test_valid_tokens_are_served(
    gateway: RunningGateway, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    assert chat(gateway, rsa_key.token()) == "mock: hello there"
    assert chat(gateway, ec_key.token()) == "mock: hello there"
    models = client(gateway, rsa_key.token()).models.list()
    assert [m.id for m in models.data] == ["m"]  # team-a's rules, as with its key


def test_the_consumer_claim_picks_the_consumer(
    gateway: RunningGateway, rsa_key: SigningKey
) -> None:
    # sub=team-a: team-a may not use the rule "private".
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(gateway, rsa_key.token(), model="p")
    assert caught.value.code == "rule_not_allowed"


def _bad_tokens(rsa_key: SigningKey) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    head, _, sig = rsa_key.token().split(".")
    body = jwt.utils.base64url_encode(jwt.api_jwt.json.dumps(claims_for(sub="x")).encode())
    return {
        "wrong issuer": (rsa_key.token(iss="https://evil.test/"), "issuer (iss)"),
        "wrong audience": (rsa_key.token(aud="another-app"), "audience (aud)"),
        "expired": (rsa_key.token(exp=now - 3600), "expired"),
        "bad signature": (f"{head}.{body.decode()}.{sig}", "signature does not verify"),
        "forged key": (SigningKey("rsa-1").token(), "signature does not verify"),
        "alg none": (unsigned(), "algorithm is not accepted"),
        "unknown kid": (SigningKey("not-published").token(), "key id (kid)"),
        "not yet valid": (rsa_key.token(nbf=now + 3600), "not valid yet"),
        "no sub": (rsa_key.token(sub=None), "required claim 'sub'"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong issuer",
        "wrong audience",
        "expired",
        "bad signature",
        "forged key",
        "alg none",
        "unknown kid",
        "not yet valid",
        "no sub",
    ],
)
def test_bad_tokens_are_401(gateway: RunningGateway, rsa_key: SigningKey, case: str) -> None:
    token, reason = _bad_tokens(rsa_key)[case]
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gateway, token)
    error = caught.value
    assert error.status_code == 401
    assert error.code == "invalid_token"
    assert reason in error.message
    assert token not in error.response.text and token.split(".")[1] not in error.response.text


def test_an_api_key_still_works_next_to_jwt(gateway: RunningGateway) -> None:
    assert chat(gateway, KEY) == "mock: hello there"
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gateway, "sk-not-a-known-key-0001")
    assert caught.value.code == "invalid_api_key"


def test_default_consumer_counts_each_subject_on_its_own(
    gateway: RunningGateway, rsa_key: SigningKey
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    # employees: 2 requests a minute, per consumer, and each subject is a consumer of its own.
    assert chat(gateway, rsa_key.token(sub=alice)) == "mock: hello there"
    assert chat(gateway, rsa_key.token(sub=alice)) == "mock: hello there"
    with pytest.raises(openai.RateLimitError):
        chat(gateway, rsa_key.token(sub=alice))
    assert chat(gateway, rsa_key.token(sub=bob)) == "mock: hello there"
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, rsa_key.token(sub=bob), model="p")  # employees' rules apply

    def counted() -> None:  # counted just after the client has its answer
        metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
        # Metrics count subjects under the configured consumer: labels stay bounded.
        assert 'consumer="employees"' in metrics
        assert alice not in metrics and bob not in metrics

    eventually(counted)


def test_admin_api_takes_an_admin_jwt(gateway: RunningGateway, rsa_key: SigningKey) -> None:
    def admin(token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.get(gateway.url + "/admin/rules", headers=headers, timeout=10)

    answer = admin(rsa_key.token(sub="ops", role="admin"))
    assert answer.status_code == 200
    assert {r["name"] for r in answer.json()["data"]} == {"chat", "private"}
    refused = admin(rsa_key.token(sub="ops", role="reader"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_claim_missing"
    expired = admin(rsa_key.token(role="admin", exp=int(time.time()) - 3600))
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "invalid_token"
    assert admin(ADMIN_KEY).status_code == 200
    assert admin("adm-wrong-key-0000").status_code == 401


def test_jwks_rotation_is_picked_up_without_restart(start_gateway: Start) -> None:
    old, new = SigningKey("2024-old"), SigningKey("2025-new", "ES256")
    idp = JwksServer(old).start()
    try:
        gateway = start_gateway(config(oidc(idp, jwks_refetch_min="0s")))
        assert chat(gateway, old.token()) == "mock: hello there"
        assert chat(gateway, old.token()) == "mock: hello there"
        assert idp.fetches == 1  # the known kid is served from the cache
        idp.keys = [new]  # the provider rotates: a new kid, the old key retired
        assert chat(gateway, new.token()) == "mock: hello there"
        assert idp.fetches == 2
        with pytest.raises(openai.AuthenticationError) as caught:
            chat(gateway, old.token())
        assert "key id (kid)" in caught.value.message
    finally:
        idp.stop()


def test_hs256_static_secret(start_gateway: Start) -> None:
    gateway = start_gateway(config({"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE}))
    good = jwt.encode(claims_for(), SECRET, algorithm="HS256")
    assert chat(gateway, good) == "mock: hello there"
    forged = jwt.encode(claims_for(), "another-secret-for-the-tests-00000001", algorithm="HS256")
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gateway, forged)
    assert caught.value.code == "invalid_token"
    # Without default_consumer, a subject that is no consumer is refused.
    stranger = jwt.encode(claims_for(sub="stranger"), SECRET, algorithm="HS256")
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gateway, stranger)
    assert caught.value.code == "unknown_consumer"
    # No admin_claim configured: a token never opens the Admin API.
    admin = jwt.encode(claims_for(role="admin"), SECRET, algorithm="HS256")
    answer = httpx.get(
        gateway.url + "/admin/rules", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    )
    assert answer.status_code == 401


def test_the_groups_claim_narrows_the_consumer(idp: JwksServer, rsa_key: SigningKey) -> None:
    doc = config(oidc(idp))
    doc["consumers"].append({"name": "staff"})  # every rule
    doc["groups"] = [
        {"name": "readers", "rules": ["chat"], "limits": {"requests": 1, "window": "1m"}}
    ]
    running = RunningGateway(doc).start()
    try:
        plain = rsa_key.token(sub="staff")
        assert chat(running, plain, model="p") == "mock: hello there"
        reader = rsa_key.token(sub="staff", groups=["readers", "not-a-group"])
        with pytest.raises(openai.PermissionDeniedError):
            chat(running, reader, model="p")  # the group allows only "chat"
        assert [m.id for m in client(running, reader).models.list().data] == ["m"]
        assert chat(running, reader) == "mock: hello there"
        with pytest.raises(openai.RateLimitError):
            chat(running, reader)  # the group's allowance: one a minute
        assert chat(running, plain) == "mock: hello there"  # without the group, no such limit
    finally:
        running.stop()
