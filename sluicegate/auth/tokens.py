"""The shape of a bearer JWT, without loading the JWT libraries.

The request path, the Admin API and the dashboard ask this of every bearer
token; PyJWT and cryptography (``sluicegate.auth.jwt``) are imported only when
a config turns ``auth.jwt`` on, which keeps them out of the memory and start-up
time of a gateway that does not use them.
"""

from __future__ import annotations

import re

# Three base64url parts; an empty signature still counts, so that an unsigned
# (``alg: none``) token is refused as a token rather than looked up as a key.
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and _SHAPE.fullmatch(token) is not None
