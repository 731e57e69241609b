"""``/ui``: the dashboard's files, its login session, and its way into the Admin API.

The page is static (HTML, CSS and JavaScript shipped in this package, no build
step, nothing from a CDN). Everything it shows comes from the Admin API, which
it reaches as ``/ui/admin/...``: that path checks the session cookie (and the
CSRF token on writes) and hands the request, as ``/admin/...``, to the Admin
API's own routes in this process. ``/admin`` itself never accepts the cookie,
so a browser holding a session adds nothing a cross-site page could use there.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sluicegate.admin.api import store_unavailable
from sluicegate.admin.throttle import client_of
from sluicegate.asgi import Message, Receive, Scope, Send, respond_error
from sluicegate.auth.tokens import looks_like_jwt
from sluicegate.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from sluicegate.stores.base import StoreUnreachable
from sluicegate.ui.ended import EndedSessions
from sluicegate.ui.session import COOKIE, LIFETIME, Session, Sessions
from sluicegate.ui.summary import WINDOWS, Sampler

if TYPE_CHECKING:
    from sluicegate.admin.api import AdminApi
    from sluicegate.runtime import Runtime

STATIC = Path(__file__).parent / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Only this origin: no inline script, no third-party anything, no framing.
_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "content-security-policy": _POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _files() -> dict[str, tuple[Path, str]]:
    """What ``/ui/static/`` serves: the package's files, listed once (no path from a request
    ever reaches the file system)."""
    found = {}
    for path in STATIC.rglob("*"):
        media = _TYPES.get(path.suffix)
        if path.is_file() and media is not None:
            found[path.relative_to(STATIC).as_posix()] = (path, media)
    return found


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        {**_HEADERS, "cache-control": "no-store", **(headers or {})},
        media_type="application/json",
    )


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def _same_origin(request: Request) -> bool:
    """A browser names the page's origin on writes; another site's must not pass."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request: those carry Origin
    host = request.headers.get("host", "")
    return origin.partition("://")[2] == host


def _token_expiry(token: str) -> float | None:
    """The ``exp`` of a token already verified, to end its session no later."""
    import jwt  # only reached with auth.jwt on, which has loaded it already

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class Dashboard:
    """An ASGI app for every path under ``/ui``."""

    def __init__(self, runtime: Runtime, admin: AdminApi) -> None:
        self.runtime = runtime
        self.admin = admin
        self.sessions = Sessions()
        self.ended = EndedSessions.of(runtime)
        self.sampler = Sampler(runtime.metrics)
        self.files = _files()
        self.app = Starlette(
            routes=[
                Route("/ui", self.home, methods=["GET"]),
                Route("/ui/", self.page, methods=["GET"]),
                Route("/ui/static/{name:path}", self.static, methods=["GET"]),
                Route("/ui/api/login", self.login, methods=["POST"]),
                Route("/ui/api/logout", self.logout, methods=["POST"]),
                Route("/ui/api/session", self.session, methods=["GET"]),
                Route("/ui/api/summary", self.summary, methods=["GET"]),
                Route(
                    "/ui/admin/{rest:path}",
                    self.to_admin,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ],
            exception_handlers={
                GatewayError: self._error,
                HTTPException: self._http_error,
                StoreUnreachable: self._store_error,
            },
        )

    @property
    def enabled(self) -> bool:
        """The dashboard exists exactly when the Admin API does."""
        verifier = self.runtime.table.jwt
        by_token = verifier is not None and verifier.admin_enabled
        return self.runtime.file.config.gateway.admin_key is not None or by_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            path, method = scope["path"], scope["method"]
            await respond_error(
                send, NotFound(f"Unknown path {method} {path}.", code="unknown_path"), []
            )
            return
        await self.app(scope, receive, send)

    def start(self) -> None:
        self.sampler.start()

    async def close(self) -> None:
        await self.sampler.close()
        await self.ended.close()

    @staticmethod
    async def _error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        headers = {**_HEADERS, **exc.headers}
        return Response(exc.body("openai"), exc.http_status, headers, "application/json")

    @staticmethod
    async def _store_error(request: Request, exc: Exception) -> Response:
        return await Dashboard._error(request, store_unavailable(exc))

    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: GatewayError = NotFound(
            f"Unknown path {request.method} {request.url.path}.", code="unknown_path"
        )
        if exc.status_code == 405:
            error = InvalidRequest(
                f"Method {request.method} is not allowed on {request.url.path}.",
                code="method_not_allowed",
            )
        return await Dashboard._error(request, error)

    # -- files ------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/ui/", 308)

    async def page(self, request: Request) -> Response:
        return self._file("index.html")

    async def static(self, request: Request) -> Response:
        return self._file(request.path_params["name"])

    def _file(self, name: str) -> Response:
        found = self.files.get(name)
        if found is None:
            raise NotFound(f"Unknown path GET /ui/static/{name}.", code="unknown_path")
        path, media = found
        # Revalidated each time: an upgrade of the package is seen at the next load.
        headers = {**_HEADERS, "cache-control": "no-cache"}
        return Response(path.read_bytes(), 200, headers, media_type=media)

    # -- the session ------------------------------------------------------------

    def _key(self) -> bytes:
        admin_key = self.runtime.file.config.gateway.admin_key
        return self.sessions.signing_key(admin_key, self.runtime.key_secret)

    async def _open_session(self, request: Request) -> Session | None:
        """The request's session: signed, not expired, not ended by a logout anywhere."""
        session = self.sessions.check(self._key(), request.cookies.get(COOKIE))
        if session is None or await self.ended.ended(session.nonce, session.expires):
            return None
        return session

    async def _session(self, request: Request) -> Session:
        session = await self._open_session(request)
        if session is None:
            raise AuthenticationError("Log in first.", code="not_logged_in")
        if request.method in _UNSAFE:
            if not _same_origin(request):
                raise PermissionDenied("Cross-origin writes are refused.", code="csrf_failed")
            if not self.sessions.csrf_ok(session, request.headers.get("x-csrf-token")):
                raise PermissionDenied(
                    "The CSRF token is missing or wrong; reload the page.", code="csrf_failed"
                )
        return session

    async def _lifetime(self, secret: str) -> float:
        """How long a session opened with ``secret`` lasts; raises when it is no admin's."""
        admin_key = self.runtime.file.config.gateway.admin_key
        if admin_key is not None and hmac.compare_digest(secret.encode(), admin_key.encode()):
            return LIFETIME
        verifier = self.runtime.table.jwt
        if verifier is not None and verifier.admin_enabled and looks_like_jwt(secret):
            identity = await verifier.verify(secret)
            if not identity.admin:
                raise PermissionDenied(
                    "This token does not carry the admin claim.", code="admin_claim_missing"
                )
            expires = _token_expiry(secret)
            left = LIFETIME if expires is None else min(LIFETIME, expires - time.time())
            if left > 0:
                return left
        raise AuthenticationError("The admin key (or token) is wrong.")

    async def login(self, request: Request) -> Response:
        if not _same_origin(request):
            raise PermissionDenied("Cross-origin logins are refused.", code="csrf_failed")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequest("The body is not valid JSON.", code="invalid_json") from None
        secret = body.get("key") if isinstance(body, dict) else None
        if not isinstance(secret, str) or not secret:
            raise InvalidRequest('Send {"key": "<the admin key or an admin token>"}.', param="key")
        client = client_of(request.scope.get("client"))
        locked = self.admin.locked(client)  # failed logins count with the Admin API's
        if locked is not None:
            raise locked
        try:
            lifetime = await self._lifetime(secret.strip())
        except AuthenticationError:
            self.admin.throttle.failed(client)
            raise
        self.admin.throttle.succeeded(client)
        cookie, session = self.sessions.issue(self._key(), lifetime)
        answer = _json({"csrf": session.csrf, "expires_at": session.expires})
        answer.set_cookie(
            COOKIE,
            cookie,
            max_age=int(lifetime),
            path="/ui",
            secure=_secure(request),
            httponly=True,
            samesite="strict",
        )
        return answer

    async def logout(self, request: Request) -> Response:
        session = await self._session(request)
        await self.ended.end(session.nonce, session.expires)
        answer = Response(status_code=204, headers=_HEADERS)
        answer.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
        return answer

    async def session(self, request: Request) -> Response:
        """Who the page is: 200 either way, so that a first visit logs no failed request."""
        session = await self._open_session(request)
        if session is None:
            return _json({"logged_in": False})
        return _json(
            {
                "logged_in": True,
                "csrf": session.csrf,
                "expires_at": session.expires,
                "gateway": self.runtime.gateway,
                "gateways": sorted(self.runtime.tables),
            }
        )

    # -- data -------------------------------------------------------------------

    async def summary(self, request: Request) -> Response:
        await self._session(request)
        window = request.query_params.get("window") or "1h"
        if window not in WINDOWS:
            raise InvalidRequest(f"window: one of {', '.join(WINDOWS)}", param="window")
        gateway = request.query_params.get("gateway") or self.runtime.gateway
        table = self.runtime.tables.get(gateway)
        if table is None:
            raise NotFound(f"No gateway named '{gateway}'.", code="gateway_not_found")
        # "off": auth: none and no consumers, so every request is served without a key.
        shown = "off" if table.anonymous is not None else "keys"
        if table.jwt is not None:
            shown = "keys and tokens"
        return _json({**self.sampler.summary(gateway, window), "authentication": shown})

    async def to_admin(self, request: Request) -> Response:
        """The Admin API on behalf of the session's admin: same routes, same answers."""
        await self._session(request)
        body = await request.body()
        scope = dict(request.scope)
        path = "/admin/" + request.path_params["rest"]
        scope["path"] = path
        scope["raw_path"] = path.encode()
        scope.pop("router", None)
        scope.pop("endpoint", None)
        scope["path_params"] = {}
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await self.admin.app(scope, receive, send)
        start = sent[0]
        content = b"".join(m.get("body", b"") for m in sent[1:])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}
        headers.pop("content-length", None)
        headers.update(_HEADERS)
        headers["cache-control"] = "no-store"
        return Response(content, start["status"], headers)
