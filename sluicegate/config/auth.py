"""Client authentication as the config declares it (``auth:``; docs/auth.md).

Each gateway has its own: the top-level ``auth`` is the default gateway's, and each
item of ``gateways:`` carries one of its own (nothing is inherited). Without consumers
a gateway refuses every request, unless its ``auth`` is the word ``none``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from sluicegate.config.base import Duration, Strict, secret

# Token algorithms by key family; "none" is never one of them.
JWT_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
JWT_SYMMETRIC = ("HS256", "HS384", "HS512")


class AdminClaim(Strict):
    """A token whose claim ``name`` is ``value`` (or a list or space-separated string
    holding it) may use the Admin API."""

    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


class JwtAuth(Strict):
    """Bearer tokens signed by an identity provider, next to (or instead of) API keys."""

    jwks_url: str | None = None
    public_key: str | None = None  # PEM, -----BEGIN PUBLIC KEY-----
    secret: str | None = secret()  # HS256/384/512
    issuer: str | None = None
    audience: str | list[str] | None = None
    algorithms: list[str] | None = None  # default: by key source (see ``accepted``)
    leeway: Duration = 30.0
    required_claims: list[str] = Field(default_factory=lambda: ["exp"])
    consumer_claim: str = Field(default="sub", min_length=1)
    groups_claim: str | None = None
    default_consumer: str | None = None
    admin_claim: AdminClaim | None = None
    jwks_refresh: Duration = Field(default=600.0, gt=0)
    jwks_refetch_min: Duration = 30.0  # an unknown kid refetches the JWKS at most this often

    @field_validator("jwks_url", "public_key", "secret", "issuer", "default_consumer")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"'{value}' is not an http(s) URL")
        return value

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                load_pem_public_key(value.encode())
            except (ValueError, TypeError):
                raise ValueError(
                    "is not a PEM public key (-----BEGIN PUBLIC KEY----- ...)"
                ) from None
        return value

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) < 32:
            raise ValueError("an HS256 secret must be at least 32 bytes long")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one algorithm, or leave it out for the default")
        for alg in value:
            if alg.lower() == "none":
                raise ValueError("'none' (unsigned tokens) is never accepted")
            if alg not in JWT_ASYMMETRIC + JWT_SYMMETRIC:
                known = ", ".join(JWT_ASYMMETRIC + JWT_SYMMETRIC)
                raise ValueError(f"'{alg}' is not an algorithm; use one of: {known}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> JwtAuth:
        given = [n for n in ("jwks_url", "public_key", "secret") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of jwks_url, public_key or secret")
        for alg in self.algorithms or []:
            if (alg in JWT_SYMMETRIC) != (self.secret is not None):
                raise ValueError(
                    f"algorithm '{alg}' does not go with "
                    + ("a shared secret" if self.secret is not None else "public keys")
                )
        return self

    @property
    def accepted(self) -> tuple[str, ...]:
        """The algorithms a token may be signed with."""
        if self.algorithms is not None:
            return tuple(self.algorithms)
        return ("HS256",) if self.secret is not None else ("RS256", "ES256", "PS256")

    def audiences(self) -> frozenset[str] | None:
        """The ``aud`` values it accepts; None: any."""
        if self.audience is None:
            return None
        return frozenset([self.audience] if isinstance(self.audience, str) else self.audience)


def same_tokens(a: JwtAuth, b: JwtAuth) -> bool:
    """Whether one token could pass both settings' issuer and audience checks: the only
    thing that keeps two gateways on one identity provider apart."""
    if a.issuer is not None and b.issuer is not None and a.issuer != b.issuer:
        return False
    mine, theirs = a.audiences(), b.audiences()
    return mine is None or theirs is None or not mine.isdisjoint(theirs)


def shared_token_issues(gateways: list[tuple[str, str, JwtAuth | None]]) -> list[str]:
    """For ``(path, gateway name, auth.jwt)`` of every gateway: one issue per gateway that
    would accept the tokens of an earlier one (and map their subjects to its own consumers)."""
    issues = []
    for i, (path, _, mine) in enumerate(gateways):
        if mine is None:
            continue
        for _, other, theirs in gateways[:i]:
            if theirs is not None and same_tokens(mine, theirs):
                issues.append(
                    f"{path}: accepts the same tokens as gateway '{other}' (the same issuer, or "
                    "one unset, and a shared or unset audience); give each gateway its own "
                    "audience"
                )
                break
    return issues


NONE = "none"  # ``auth: none``: a gateway without consumers serves requests without a key


class Auth(Strict):
    """``jwt``: bearer tokens next to keys. ``anonymous`` is what ``auth: none`` sets."""

    jwt: JwtAuth | None = None
    anonymous: bool = False

    @model_validator(mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value != NONE:
                raise ValueError(f"'{value}' is not a setting; use '{NONE}' or {{jwt: ...}}")
            return {"anonymous": True}
        return value

    @model_validator(mode="after")
    def _alone(self) -> Auth:
        if self.anonymous and self.jwt is not None:
            raise ValueError(f"'{NONE}' takes no jwt: tokens are an authentication")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        if self.anonymous:
            return NONE  # written back the way it is written
        dumped = handler(self)
        if isinstance(dumped, dict):
            dumped.pop("anonymous", None)
        return dumped
