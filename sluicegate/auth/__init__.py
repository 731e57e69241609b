"""Client authentication beyond API keys: bearer JWTs from an identity provider."""

from sluicegate.auth.jwt import Identity, JwtVerifier, looks_like_jwt

__all__ = ["Identity", "JwtVerifier", "looks_like_jwt"]
