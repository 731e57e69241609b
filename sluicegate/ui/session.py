"""Dashboard sessions: a signed cookie, and a CSRF token derived from it.

Nothing is kept per open session on the server: the cookie carries its expiry
and a random nonce, signed with HMAC-SHA256. The signing key is derived from the
admin key, so every instance and worker behind one load balancer accepts the
same cookie, and changing the admin key ends every session. Without an admin
key (admin tokens only) the key is ``SLUICEGATE_KEY_SECRET``'s, or else random
per run of the server (shared by its workers), and a session then holds on that
instance alone, until it stops. A logout is kept
where every instance sees it (ui/ended.py).

The CSRF token is a second HMAC of the nonce: the page reads it from
``/ui/api/session`` (a same-origin answer) and sends it in ``X-CSRF-Token`` with
every write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

from sluicegate.workers import run_secret

COOKIE = "sluicegate_ui"
LIFETIME = 8 * 3600.0  # a working day; a JWT login ends with its token if that is sooner
_VERSION = "v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: float
    csrf: str


class Sessions:
    """Issues and checks session cookies under one signing key."""

    def __init__(self) -> None:
        # Used only when no configured secret exists; the workers of one serve share it.
        self._fallback = run_secret() or os.urandom(32)

    @staticmethod
    def _key(material: bytes) -> bytes:
        return hmac.new(material, b"sluicegate-ui-session", hashlib.sha256).digest()

    def signing_key(self, admin_key: str | None, key_secret: bytes | None) -> bytes:
        if admin_key:
            return self._key(admin_key.encode())
        return self._key(key_secret or self._fallback)

    @staticmethod
    def _mac(key: bytes, text: str) -> str:
        return _b64(hmac.new(key, text.encode(), hashlib.sha256).digest())

    def issue(self, key: bytes, lifetime: float = LIFETIME) -> tuple[str, Session]:
        nonce = _b64(os.urandom(18))
        expires = int(time.time() + lifetime)
        body = f"{_VERSION}.{expires}.{nonce}"
        cookie = f"{body}.{self._mac(key, body)}"
        return cookie, Session(nonce, float(expires), self._mac(key, "csrf." + nonce))

    def check(self, key: bytes, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is forged or expired (whether it was
        ended by logout is ``EndedSessions``' to say)."""
        if not cookie or len(cookie) > 200:
            return None
        body, _, mac = cookie.rpartition(".")
        version, _, rest = body.partition(".")
        expires, _, nonce = rest.partition(".")
        if version != _VERSION or not expires.isdigit() or not nonce:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(key, body).encode()):
            return None
        if float(expires) <= time.time():
            return None
        return Session(nonce, float(expires), self._mac(key, "csrf." + nonce))

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), session.csrf.encode())
