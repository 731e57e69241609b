"""The JWT verifier on its own: keys, claims, the JWKS cache (a real JWKS server on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from sluicegate.auth.jwt import Identity, JwtVerifier
from sluicegate.auth.tokens import looks_like_jwt
from sluicegate.config.auth import JwtAuth
from sluicegate.config.load import parse_config
from sluicegate.errors import AuthenticationError
from sluicegate.routing.compile import compile_config
from tests.fakes.jwks_server import AUDIENCE, ISSUER, JwksServer, SigningKey, claims_for, unsigned

SECRET = "a-shared-secret-of-at-least-32-bytes!"


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256")


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(rsa_key, ec_key).start()
    yield server
    server.stop()


def settings(**extra: Any) -> JwtAuth:
    return JwtAuth(**{"issuer": ISSUER, "audience": AUDIENCE, **extra})


def verify(verifier: JwtVerifier, token: str) -> Identity:
    return asyncio.run(verifier.verify(token))


def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verify(verifier, token)
    error = caught.value
    assert error.code == "invalid_token" and error.http_status == 401
    assert token not in error.message and token.split(".")[1] not in error.message
    return error.message


# -- config ---------------------------------------------------------------------


def test_config_needs_exactly_one_key_source(rsa_key: SigningKey) -> None:
    with pytest.raises(ValidationError, match="exactly one of jwks_url, public_key or secret"):
        JwtAuth()
    with pytest.raises(ValidationError, match="exactly one"):
        JwtAuth(jwks_url="https://idp.test/jwks.json", secret=SECRET)
    assert JwtAuth(public_key=rsa_key.public_pem()).accepted == ("RS256", "ES256", "PS256")
    assert JwtAuth(secret=SECRET).accepted == ("HS256",)


def test_config_refuses_none_and_mixed_families() -> None:
    url = "https://idp.test/jwks.json"
    with pytest.raises(ValidationError, match="'none'"):
        JwtAuth(jwks_url=url, algorithms=["none"])
    with pytest.raises(ValidationError, match="does not go with public keys"):
        JwtAuth(jwks_url=url, algorithms=["RS256", "HS256"])
    with pytest.raises(ValidationError, match="does not go with a shared secret"):
        JwtAuth(secret=SECRET, algorithms=["RS256"])
    with pytest.raises(ValidationError, match="is not an algorithm"):
        JwtAuth(jwks_url=url, algorithms=["RS1"])
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        JwtAuth(secret="short")
    with pytest.raises(ValidationError, match="not a PEM public key"):
        JwtAuth(public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")
    with pytest.raises(ValidationError, match="not an http"):
        JwtAuth(jwks_url="idp.test/jwks.json")


def test_config_leeway_is_a_duration_and_secret_is_not_shown() -> None:
    auth = JwtAuth(secret=SECRET, leeway="1m")
    assert auth.leeway == 60.0
    assert SECRET not in repr(auth)


def test_looks_like_jwt(rsa_key: SigningKey) -> None:
    assert looks_like_jwt(rsa_key.token())
    assert looks_like_jwt(unsigned())  # the empty signature of alg none: still a token
    for key in ("sk-test-team-a-0001", "sg-abc.def", "a.b.c.d", "a..c", "a.b.c d", ""):
        assert not looks_like_jwt(key), key


# -- static keys ----------------------------------------------------------------


def test_static_public_key_verifies_and_maps_claims(rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(
        settings(
            public_key=rsa_key.public_pem(),
            groups_claim="groups",
            admin_claim={"name": "role", "value": "admin"},
        )
    )
    identity = verify(verifier, rsa_key.token(groups=["eng", "ml"], role="admin"))
    assert identity == Identity("team-a", ("eng", "ml"), True)
    assert verify(verifier, rsa_key.token(role="reader")).admin is False
    assert verify(verifier, rsa_key.token(role="reader admin")).admin is True
    assert verify(verifier, rsa_key.token(role=["admin"], groups="eng")).groups == ("eng",)


def test_hs256_secret() -> None:
    verifier = JwtVerifier(settings(secret=SECRET))
    token = jwt.encode(claims_for(sub="svc-1"), SECRET, algorithm="HS256")
    assert verify(verifier, token).consumer == "svc-1"
    other = jwt.encode(claims_for(), "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    assert "signature does not verify" in refused(verifier, other)


def test_alg_none_and_algorithms_outside_the_list_are_refused(rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(public_key=rsa_key.public_pem(), algorithms=["RS256"]))
    assert "algorithm is not accepted" in refused(verifier, unsigned())
    # HS256 with a public key is the classic key confusion; the default list has no HS* either.
    forged = jwt.encode(claims_for(), "x" * 32, algorithm="HS256")
    assert "algorithm is not accepted" in refused(verifier, forged)
    default = JwtVerifier(settings(public_key=rsa_key.public_pem()))
    assert "algorithm is not accepted" in refused(default, forged)


def test_claims_are_checked(rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(public_key=rsa_key.public_pem(), leeway="30s"))
    now = int(time.time())
    assert "expired" in refused(verifier, rsa_key.token(exp=now - 60))
    assert verify(verifier, rsa_key.token(exp=now - 10)).consumer == "team-a"  # within leeway
    assert "not valid yet" in refused(verifier, rsa_key.token(nbf=now + 120))
    assert "issuer (iss)" in refused(verifier, rsa_key.token(iss="https://evil.test/"))
    assert "audience (aud)" in refused(verifier, rsa_key.token(aud="someone-else"))
    assert "required claim 'exp'" in refused(verifier, rsa_key.token(exp=None))
    assert "'sub' claim does not name a consumer" in refused(verifier, rsa_key.token(sub=None))
    assert "'sub' claim" in refused(verifier, rsa_key.token(sub="x" * 500))
    assert "not a well-formed JWT" in refused(verifier, "abc.def.ghi")


def test_bad_signature(rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(public_key=rsa_key.public_pem()))
    impostor = SigningKey(rsa_key.kid)
    assert "signature does not verify" in refused(verifier, impostor.token())
    head, body, sig = rsa_key.token().split(".")
    tampered = jwt.utils.base64url_encode(
        jwt.api_jwt.json.dumps(claims_for(sub="team-b")).encode()
    ).decode()
    assert tampered != body
    assert "signature does not verify" in refused(verifier, f"{head}.{tampered}.{sig}")


def test_required_claims_and_consumer_claim_are_configurable(rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(
        settings(
            public_key=rsa_key.public_pem(),
            required_claims=["exp", "email"],
            consumer_claim="email",
        )
    )
    assert "required claim 'email'" in refused(verifier, rsa_key.token())
    assert verify(verifier, rsa_key.token(email="a@b.test")).consumer == "a@b.test"


# -- JWKS -------------------------------------------------------------------------


def test_jwks_keys_are_fetched_once_and_cached(
    jwks: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    verifier = JwtVerifier(settings(jwks_url=jwks.jwks_url))

    async def run() -> list[Identity]:
        # Concurrent first requests share one fetch.
        tokens = [rsa_key.token(sub=f"u{i}") for i in range(10)]
        first = await asyncio.gather(*(verifier.verify(t) for t in tokens))
        again = await verifier.verify(ec_key.token(sub="ec"))
        return [*first, again]

    identities = asyncio.run(run())
    assert [i.consumer for i in identities] == [*(f"u{i}" for i in range(10)), "ec"]
    assert jwks.fetches == 1


def test_wrong_family_for_a_kid_is_refused(jwks: JwksServer, rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(jwks_url=jwks.jwks_url))
    # An EC-signed token claiming the RSA key's kid.
    liar = SigningKey(rsa_key.kid, "ES256")
    assert "does not match its key" in refused(verifier, liar.token())


def test_unknown_kid_refetches_then_is_refused(jwks: JwksServer, rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(jwks_url=jwks.jwks_url, jwks_refetch_min="30s"))
    verify(verifier, rsa_key.token())
    assert jwks.fetches == 1
    stranger = SigningKey("nobody")
    assert "key id (kid) is not one of" in refused(verifier, stranger.token())
    assert jwks.fetches == 1  # the last fetch was under 30 s ago: no refetch


def test_rotation_is_picked_up_on_an_unknown_kid(jwks: JwksServer, rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(jwks_url=jwks.jwks_url, jwks_refetch_min=0))
    verify(verifier, rsa_key.token())
    rotated = SigningKey("rsa-2")
    jwks.keys = [rotated]
    assert verify(verifier, rotated.token(sub="after")).consumer == "after"
    assert jwks.fetches == 2
    # The retired key is gone from the JWKS, so it no longer verifies.
    assert "key id (kid) is not one of" in refused(verifier, rsa_key.token())


def test_stale_cache_serves_while_refreshing(jwks: JwksServer, rsa_key: SigningKey) -> None:
    now = [1000.0]
    verifier = JwtVerifier(
        settings(jwks_url=jwks.jwks_url, jwks_refresh="10m"), clock=lambda: now[0]
    )

    async def run() -> None:
        await verifier.verify(rsa_key.token())
        now[0] += 601
        jwks.delay = 0.3
        started = time.monotonic()
        await verifier.verify(rsa_key.token())  # answered from the cache: no wait
        assert time.monotonic() - started < 0.2
        await asyncio.sleep(0.6)  # the background refresh completes

    asyncio.run(run())
    assert jwks.fetches == 2


def test_no_kid_with_a_single_key(rsa_key: SigningKey) -> None:
    server = JwksServer(rsa_key).start()
    try:
        verifier = JwtVerifier(settings(jwks_url=server.jwks_url))
        token = jwt.encode(claims_for(), rsa_key.private, algorithm="RS256")
        assert verify(verifier, token).consumer == "team-a"
    finally:
        server.stop()


def test_unreachable_jwks_is_a_401(closed_port: int, rsa_key: SigningKey) -> None:
    verifier = JwtVerifier(settings(jwks_url=f"http://127.0.0.1:{closed_port}/jwks.json"))
    assert "could not be fetched" in refused(verifier, rsa_key.token())


# -- across config reloads ----------------------------------------------------------


def _table(auth: dict[str, Any], previous: Any = None, **extra: Any) -> Any:
    config = {
        "services": [{"name": "m", "provider": "mock"}],
        "rules": [{"name": "r", "targets": [{"service": "m"}]}],
        "consumers": [{"name": "employees"}],
        "auth": {"jwt": auth},
        **extra,
    }
    loaded = parse_config(config, env={})
    return compile_config(loaded.config, loaded.warnings, previous)


def test_verifier_carries_over_while_unchanged() -> None:
    auth = {"jwks_url": "https://idp.test/jwks.json", "audience": AUDIENCE}
    first = _table(auth)
    assert first.jwt is not None and first.anonymous is None
    same = _table(auth, first, pricing={"x": {"input": 1, "output": 2}})
    assert same.jwt is first.jwt
    changed = _table({**auth, "audience": "other"}, same)
    assert changed.jwt is not None and changed.jwt is not first.jwt
    assert _table(auth, changed).jwt is not changed.jwt


def test_compile_warns_about_missing_audience_and_unknown_default() -> None:
    table = _table({"secret": SECRET, "default_consumer": "nobody"})
    assert any("auth.jwt.audience: not set" in w for w in table.warnings)
    assert any("default_consumer: 'nobody' is not a consumer" in w for w in table.warnings)
    assert table.consumers["employees"].name == "employees"


def test_jwt_turns_off_anonymous_access() -> None:
    loaded = parse_config(
        {
            "services": [{"name": "m", "provider": "mock"}],
            "rules": [{"name": "r", "targets": [{"service": "m"}]}],
            "auth": {"jwt": {"secret": SECRET, "audience": AUDIENCE}},
        },
        env={},
    )
    table = compile_config(loaded.config, loaded.warnings)
    assert table.anonymous is None
    assert table.authenticate(None) is None and table.authenticate("sk-anything-123") is None
    assert not any(w.startswith("consumers: none configured") for w in table.warnings)
