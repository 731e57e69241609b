"""Bearer JWTs (``auth.jwt``): verified against a JWKS, a static public key or a shared secret.

One ``JwtVerifier`` per routing table, carried to the next table while its settings
do not change, so that its JWKS cache survives config reloads. A token whose ``kid``
is cached is verified without any I/O; an unknown ``kid`` refetches the JWKS (one
fetch at a time, at most once per ``jwks_refetch_min``), and a cache older than
``jwks_refresh`` is refreshed in the background while the cached keys keep working.

Every failure is an ``AuthenticationError`` with code ``invalid_token`` and a message
that names what was wrong, never the token or a claim's value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sluicegate.config.auth import JwtAuth
from sluicegate.errors import AuthenticationError

log = logging.getLogger("sluicegate.auth")

_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_MAX_JWKS_BYTES = 1024 * 1024
_MAX_CONSUMER = 200
# A JWKS endpoint is usually near (or on loopback); a slow one must not hold requests long.
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=2.0)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for."""

    consumer: str  # the consumer claim's value
    groups: tuple[str, ...]  # the groups claim's values, for consumer groups
    admin: bool  # the admin claim matched: the token may use the Admin API


@dataclass(frozen=True, slots=True)
class _Key:
    key: Any  # a cryptography public key, or the secret's bytes
    alg: str | None  # the JWK's own ``alg``, which then is the only one it verifies


def _invalid(message: str) -> AuthenticationError:
    return AuthenticationError(message, code="invalid_token")


def _fits(alg: str, key: _Key) -> bool:
    """Whether ``alg`` belongs to the key's family (no RSA key for an EC token, no HMAC
    with a public key)."""
    if key.alg is not None and key.alg != alg:
        return False
    if isinstance(key.key, bytes):
        return alg.startswith("HS")
    if isinstance(key.key, rsa.RSAPublicKey):
        return alg.startswith(("RS", "PS"))
    if isinstance(key.key, ec.EllipticCurvePublicKey):
        return _CURVES.get(alg) == key.key.curve.name
    return False


def _parse_jwks(body: bytes) -> dict[str | None, _Key]:
    """The signing keys of a JWKS document by ``kid``; keys it cannot use are skipped."""
    document = orjson.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (an object with 'keys')")
    keys: dict[str | None, _Key] = {}
    for item in document["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        if item.get("kty") not in ("RSA", "EC"):
            continue  # shared (oct) keys are never taken from a URL
        try:
            jwk = jwt.PyJWK(item)
        except jwt.PyJWTError:
            continue
        kid = item.get("kid")
        alg = item.get("alg")
        keys[kid if isinstance(kid, str) else None] = _Key(
            jwk.key, alg if isinstance(alg, str) else None
        )
    return keys


def _claim_matches(value: Any, wanted: str) -> bool:
    if isinstance(value, list):
        return wanted in value
    if isinstance(value, str):
        return value == wanted or wanted in value.split()
    return False


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


class JwtVerifier:
    """Verifies bearer JWTs for one ``auth.jwt`` setting; keeps the JWKS cache."""

    def __init__(self, settings: JwtAuth, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.algorithms = settings.accepted
        self._clock = clock
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None  # when the cache was last filled
        self._tried_at: float | None = None  # when a fetch last started
        self._fetching: asyncio.Task[None] | None = None
        if settings.secret is not None:
            self._keys[None] = _Key(settings.secret.encode(), None)
        elif settings.public_key is not None:
            self._keys[None] = _Key(load_pem_public_key(settings.public_key.encode()), None)

    @property
    def default_consumer(self) -> str | None:
        return self.settings.default_consumer

    @property
    def admin_enabled(self) -> bool:
        return self.settings.admin_claim is not None

    async def verify(self, token: str) -> Identity:
        """The identity of a valid token; ``AuthenticationError`` for any other."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("The bearer token is not a well-formed JWT.") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _invalid(
                "The token's signing algorithm is not accepted; accepted: "
                + ", ".join(self.algorithms)
                + "."
            )
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        if not _fits(alg, key):
            raise _invalid("The token's signing algorithm does not match its key.")
        claims = self._decode(token, key.key, alg)
        return self._identity(claims)

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            "require": list(s.required_claims),
            "verify_aud": s.audience is not None,
            "verify_iss": s.issuer is not None,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options=options,  # type: ignore[arg-type]
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("The token is not valid yet (nbf or iat is in the future).") from None
        except jwt.InvalidIssuerError:
            raise _invalid("The token's issuer (iss) is not accepted.") from None
        except jwt.InvalidAudienceError:
            raise _invalid("The token's audience (aud) is not accepted.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"The token lacks the required claim '{exc.claim}'.") from None
        except jwt.InvalidSignatureError:
            raise _invalid("The token's signature does not verify.") from None
        except jwt.PyJWTError:
            raise _invalid("The token is invalid.") from None
        return claims

    def _identity(self, claims: dict[str, Any]) -> Identity:
        s = self.settings
        consumer = claims.get(s.consumer_claim)
        if isinstance(consumer, int) and not isinstance(consumer, bool):
            consumer = str(consumer)
        if (
            not isinstance(consumer, str)
            or not 0 < len(consumer) <= _MAX_CONSUMER
            or not consumer.isprintable()
        ):
            raise _invalid(f"The token's '{s.consumer_claim}' claim does not name a consumer.")
        groups = _groups(claims.get(s.groups_claim)) if s.groups_claim else ()
        admin = s.admin_claim is not None and _claim_matches(
            claims.get(s.admin_claim.name), s.admin_claim.value
        )
        return Identity(consumer, groups, admin)

    # -- keys ---------------------------------------------------------------------

    async def _key(self, kid: str | None) -> _Key:
        if self.settings.jwks_url is None:
            return self._keys[None]  # a static key: the kid does not matter
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at >= self.settings.jwks_refresh:
            self._refresh_soon()  # stale: the cached keys serve while a fetch runs
        key = self._find(kid)
        if key is None:
            if self._fetching is not None and not self._fetching.done():
                await asyncio.shield(self._fetching)
            elif self._may_fetch(now):
                await self._refetch()
            key = self._find(kid)
        if key is None:
            if not self._keys:
                raise _invalid("The issuer's signing keys could not be fetched; try again later.")
            if kid is None:
                raise _invalid("The token names no key id (kid) and the issuer has several keys.")
            raise _invalid("The token's key id (kid) is not one of the issuer's signing keys.")
        return key

    def _find(self, kid: str | None) -> _Key | None:
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        return key

    def _may_fetch(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self.settings.jwks_refetch_min

    def _refresh_soon(self) -> None:
        if (self._fetching is None or self._fetching.done()) and self._may_fetch(self._clock()):
            self._start_fetch()

    async def _refetch(self) -> None:
        """One fetch at a time: every caller waits for the same one."""
        if self._fetching is None or self._fetching.done():
            self._start_fetch()
        assert self._fetching is not None
        # Shielded: a client that goes away does not cancel the fetch the others wait on.
        await asyncio.shield(self._fetching)

    def _start_fetch(self) -> None:
        self._tried_at = self._clock()
        self._fetching = asyncio.get_running_loop().create_task(self._fetch(), name="jwks fetch")

    async def _fetch(self) -> None:
        url = self.settings.jwks_url
        assert url is not None
        try:
            async with (
                aiohttp.ClientSession(timeout=_FETCH_TIMEOUT) as session,
                session.get(url, headers={"accept": "application/json"}) as response,
            ):
                if response.status != 200:
                    raise ValueError(f"status {response.status}")
                body = await response.content.read(_MAX_JWKS_BYTES + 1)
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError("larger than 1 MiB")
            keys = _parse_jwks(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # The cached keys (if any) stay; the next unknown kid tries again.
            log.warning("auth.jwt: could not fetch the JWKS from %s: %s", url, exc or type(exc))
            return
        self._keys = keys
        self._fetched_at = self._clock()
