"""An identity provider's signing side: keys made in the test, served as a JWKS on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.fakes.server import FakeServer

ISSUER = "https://idp.test/"
AUDIENCE = "sluicegate"


class SigningKey:
    """A private key of the issuer's; ``alg`` is what the tokens it signs say."""

    def __init__(self, kid: str, alg: str = "RS256") -> None:
        self.kid, self.alg = kid, alg
        self.private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
            self.private = ec.generate_private_key(curve)
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            data: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        return jwt.encode(
            claims_for(**claims),
            self.private,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )


def claims_for(**claims: Any) -> dict[str, Any]:
    """A valid token's claims; a keyword set to None leaves that claim out."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "team-a",
        "iat": now,
        "exp": now + 300,
    }
    base.update(claims)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(**claims: Any) -> str:
    """An ``alg: none`` token, as an attacker would send it."""
    return jwt.encode(claims_for(**claims), None, algorithm="none")


class JwksServer(FakeServer):
    """Serves ``keys`` at ``/jwks.json``; the test swaps them to rotate."""

    def __init__(self, *keys: SigningKey) -> None:
        super().__init__()
        self.keys = list(keys)
        self.delay = 0.0

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks.json"

    @property
    def fetches(self) -> int:
        return self.calls.get("jwks", 0)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/jwks.json", self.jwks)

    async def jwks(self, request: web.Request) -> web.Response:
        self.count("jwks")
        if self.delay:
            await asyncio.sleep(self.delay)
        body = orjson.dumps({"keys": [key.jwk() for key in self.keys]})
        return web.Response(body=body, content_type="application/json")
