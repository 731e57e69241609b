"""Client authentication: API keys (``keys``) and bearer JWTs from an identity provider
(``jwt``, loaded only when a config turns ``auth.jwt`` on; ``tokens`` tells a JWT by its
shape without it)."""
