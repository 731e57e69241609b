"""Cross-origin requests from browsers to the data plane (``gateway.cors``).

Off unless configured: no ``Access-Control-*`` header is ever sent, so a page
on another origin cannot read an answer. When on, only the listed origins are
answered (``*`` allows any, and then credentials are never allowed), a
preflight gets the methods and headers the data plane takes, and answers
expose the gateway's own headers. ``/admin`` and ``/ui`` never take part:
the dashboard is same-origin.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.asgi import Headers, Message, Send

_METHODS = b"GET, POST, OPTIONS"
_EXPOSED = (
    b"x-request-id, x-sluicegate-service, x-sluicegate-attempts, x-sluicegate-cache, "
    b"x-sluicegate-cache-similarity, retry-after, x-ratelimit-limit-requests, "
    b"x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "
    b"x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"
)


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[bytes]
    any_origin: bool
    allow_headers: bytes
    max_age: bytes

    @classmethod
    def of(cls, origins: list[str], headers: list[str], max_age: float) -> CorsPolicy:
        return cls(
            frozenset(o.rstrip("/").encode() for o in origins if o != "*"),
            "*" in origins,
            ", ".join(h.lower() for h in headers).encode(),
            str(int(max_age)).encode(),
        )

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin in self.origins

    def _origin(self, origin: bytes) -> Headers:
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*")]
        return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]

    def preflight(self, origin: bytes) -> Headers:
        """The headers of a 204 answer to an allowed preflight."""
        return [
            *self._origin(origin),
            (b"access-control-allow-methods", _METHODS),
            (b"access-control-allow-headers", self.allow_headers),
            (b"access-control-max-age", self.max_age),
        ]

    def wrap(self, send: Send, origin: bytes) -> Send:
        """``send`` with the CORS headers added to the start of the answer."""
        extra = [*self._origin(origin), (b"access-control-expose-headers", _EXPOSED)]

        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sender


def origin_of(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bool]:
    """The ``Origin`` header, and whether this is a preflight (it asks for a method)."""
    origin: bytes | None = None
    preflight = False
    for name, value in headers:
        if name == b"origin":
            origin = value
        elif name == b"access-control-request-method":
            preflight = True
    return origin, preflight
