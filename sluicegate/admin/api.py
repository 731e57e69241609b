"""The Admin API (``/admin``): CRUD over upstreams, services, rules and consumers.

Every write validates the whole candidate config (file + store + the change),
compiles it, stores the change and swaps the new table in, under one lock, so
that the running table always matches the store and an invalid change leaves
both untouched.
"""

from __future__ import annotations

import base64
import hmac
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin import explorer, paging
from sluicegate.admin.checks import refuse_new_issues, refuse_undeclared_catch_all
from sluicegate.admin.entities import (
    Entity,
    entities,
    find,
    json_response,
    merge_input,
    new_secrets,
    positions,
    present,
    referrers,
    seal,
    secret_refused,
)
from sluicegate.admin.gateways import GatewayEndpoints
from sluicegate.admin.health import health_report
from sluicegate.admin.keys import KeyEndpoints, keys_of
from sluicegate.admin.layers import PLURAL, SINGULAR, Built, build
from sluicegate.admin.logs import LogEndpoints
from sluicegate.admin.models import ModelEndpoints
from sluicegate.admin.openapi import openapi_spec
from sluicegate.admin.route import RouteEndpoints
from sluicegate.admin.throttle import LoginThrottle, client_of
from sluicegate.asgi import Receive, Scope, Send, respond_error
from sluicegate.auth.tokens import looks_like_jwt
from sluicegate.errors import (
    AuthenticationError,
    ConfigError,
    Conflict,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    StoreUnavailable,
    Unprocessable,
)
from sluicegate.proxy.handler import read_headers
from sluicegate.stores.base import (
    Change,
    DuplicateName,
    Record,
    StaleWrite,
    Store,
    StoreUnreachable,
)

if TYPE_CHECKING:
    from sluicegate.routing.semantic import Embed
    from sluicegate.routing.table import RoutingTable
    from sluicegate.runtime import Runtime

log = logging.getLogger("sluicegate")


def _issues(exc: ConfigError) -> list[tuple[str, str]]:
    """``path: message`` lines as the 422's ``(path, message)`` pairs."""
    out = []
    for issue in exc.issues:
        path, sep, message = issue.partition(": ")
        out.append((path, message) if sep else ("", issue))
    return out


def store_unavailable(exc: Exception) -> StoreUnavailable:
    """What the control plane answers when its store did not (``StoreUnreachable``)."""
    log.warning("Admin API: the store did not answer (%s); answered 503", exc)
    return StoreUnavailable(
        "The store did not answer; try again shortly.",
        headers={"Retry-After": "1"},
    )


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return True
    wanted = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in wanted or etag in wanted


_CHALLENGE = b'Basic realm="sluicegate admin (the password is the admin key)", charset="UTF-8"'


def _basic_password(value: str) -> str:
    """The password of ``Basic <user:password>``; any other value as it is."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return value
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except ValueError:
        return value
    return decoded.partition(":")[2]


class AdminApi:
    """An ASGI app for every path under ``/admin``, behind the admin key."""

    def __init__(
        self, runtime: Runtime, embedder: Callable[[RoutingTable], Embed] | None = None
    ) -> None:
        self.runtime = runtime
        self.embedder = embedder  # semantic routes' (route explain): the proxy's
        self._spec: bytes | None = None  # built on first request, then served as is
        self.throttle = LoginThrottle()  # failed admin logins, here and at the dashboard
        # A gateway's MCP servers' health, from the MCP endpoint (``app.App`` sets it).
        self.mcp_status: Callable[[str], list[dict[str, object]]] = lambda gateway: []
        kind = "{kind:str}"
        gw = "/admin/gateways/{gw:str}"
        keys = KeyEndpoints(self)
        gateways = GatewayEndpoints(self)
        logs = LogEndpoints(self)
        models = ModelEndpoints(self)
        route = RouteEndpoints(self)
        self.app = Starlette(
            routes=[
                Route("/admin/docs", explorer.page, methods=["GET"]),
                Route("/admin/docs/{asset:str}", explorer.asset, methods=["GET"]),
                Route("/admin/health", self.health, methods=["GET"]),
                Route("/admin/mcp-health", self.mcp_health, methods=["GET"]),
                Route("/admin/openapi.json", self.openapi, methods=["GET"]),
                *logs.routes("/admin"),
                *keys.routes("/admin"),
                *keys.routes(gw),
                *gateways.routes(),
                *models.routes("/admin"),
                *models.routes(gw),
                *route.routes("/admin"),
                *route.routes(gw),
                Route(f"{gw}/health", self.health, methods=["GET"]),
                Route(f"{gw}/mcp-health", self.mcp_health, methods=["GET"]),
                *logs.routes(gw),
                Route(f"{gw}/{kind}", self.list_kind, methods=["GET"]),
                Route(f"{gw}/{kind}", self.create, methods=["POST"]),
                Route(f"{gw}/{kind}/{{ref:str}}", self.get, methods=["GET"]),
                Route(f"{gw}/{kind}/{{ref:str}}", self.replace, methods=["PUT"]),
                Route(f"{gw}/{kind}/{{ref:str}}", self.patch, methods=["PATCH"]),
                Route(f"{gw}/{kind}/{{ref:str}}", self.delete, methods=["DELETE"]),
                Route(f"/admin/{kind}", self.list_kind, methods=["GET"]),
                Route(f"/admin/{kind}", self.create, methods=["POST"]),
                Route(f"/admin/{kind}/{{ref:str}}", self.get, methods=["GET"]),
                Route(f"/admin/{kind}/{{ref:str}}", self.replace, methods=["PUT"]),
                Route(f"/admin/{kind}/{{ref:str}}", self.patch, methods=["PATCH"]),
                Route(f"/admin/{kind}/{{ref:str}}", self.delete, methods=["DELETE"]),
            ],
            exception_handlers={
                GatewayError: self._error,
                HTTPException: self._http_error,
                StoreUnreachable: self._store_error,
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admin_key = self.runtime.file.config.gateway.admin_key
        verifier = self.runtime.table.jwt
        by_token = verifier is not None and verifier.admin_enabled  # auth.jwt.admin_claim
        path, method = scope["path"], scope["method"]
        if admin_key is None and not by_token:  # the Admin API is off: it does not exist
            await respond_error(
                send, NotFound(f"Unknown path {method} {path}.", code="unknown_path"), []
            )
            return
        raw = read_headers(scope["headers"]).key or ""
        client = client_of(scope.get("client"))
        if raw:  # a request without any key guesses nothing: it is not held up
            locked = self.locked(client)
            if locked is not None:
                await respond_error(send, locked, [])
                return
        key = _basic_password(raw)
        key_ok = admin_key is not None and hmac.compare_digest(key.encode(), admin_key.encode())
        if not key_ok and by_token and verifier is not None and looks_like_jwt(raw):
            try:
                identity = await verifier.verify(raw)
                if not identity.admin:
                    raise PermissionDenied(
                        "This token does not carry the admin claim.", code="admin_claim_missing"
                    )
            except GatewayError as exc:
                if isinstance(exc, AuthenticationError):
                    self.throttle.failed(client)
                await respond_error(send, exc, [])
                return
            key_ok = True
        if key_ok:
            self.throttle.succeeded(client)
        else:
            if raw:  # a wrong key: a guess
                self.throttle.failed(client)
            # A browser opening the explorer is asked for the key (as a Basic password).
            challenge = (
                [(b"www-authenticate", _CHALLENGE)] if path.startswith("/admin/docs") else []
            )
            error = AuthenticationError("The admin key is missing or wrong.")
            await respond_error(send, error, challenge)
            return
        await self.app(scope, receive, send)

    def locked(self, client: str) -> RateLimited | None:
        """The 429 for an address that failed to log in too often lately (admin/throttle.py)."""
        wait = self.throttle.retry_after(client)
        if wait is None:
            return None
        return RateLimited(
            f"Too many failed admin logins from this address; try again in {wait} s.",
            code="too_many_failed_logins",
            headers={"Retry-After": str(wait)},
        )

    @staticmethod
    async def _error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return Response(
            exc.body("openai"), exc.http_status, exc.headers, media_type="application/json"
        )

    @staticmethod
    async def _store_error(request: Request, exc: Exception) -> Response:
        return await AdminApi._error(request, store_unavailable(exc))

    @staticmethod
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: GatewayError
        if exc.status_code == 405:
            error = InvalidRequest(
                f"Method {request.method} is not allowed on {request.url.path}.",
                code="method_not_allowed",
            )
            return Response(error.body("openai"), 405, exc.headers, media_type="application/json")
        error = NotFound(f"Unknown path {request.method} {request.url.path}.", code="unknown_path")
        return await AdminApi._error(request, error)

    # -- reading ----------------------------------------------------------------

    def _kind(self, request: Request) -> str:
        plural = str(request.path_params["kind"]).replace("-", "_")
        if plural not in SINGULAR or "_" in request.path_params["kind"]:
            raise NotFound(
                f"Unknown path {request.method} {request.url.path}.", code="unknown_path"
            )
        return SINGULAR[plural]

    def gw(self, request: Request) -> str:
        """The gateway a request is about: the path's ``{gw}``, else the default one."""
        name: str | None = request.path_params.get("gw")
        if name is None:
            return self.runtime.gateway
        if name not in self.runtime.tables:
            raise NotFound(f"No gateway named '{name}'.", code="gateway_not_found")
        return name

    def _tenant(self, gw: str) -> str | None:
        return None if gw == self.runtime.gateway else gw

    async def records(self, gw: str) -> list[Record]:
        store = self.runtime.store
        return await store.entities(gw) if store is not None else []

    def everything(self, gw: str, records: list[Record]) -> dict[str, list[Entity]]:
        file = self.runtime.file_of(gw)
        return {kind: entities(file, records, kind, self._tenant(gw)) for kind in PLURAL}

    @staticmethod
    def find(items: list[Entity], kind: str, ref: str) -> Entity:
        entity = find(items, ref)
        if entity is None:
            raise NotFound(f"No {kind} with id or name '{ref}'.", code=f"{kind}_not_found")
        return entity

    async def health(self, request: Request) -> Response:
        return json_response(health_report(self.runtime.tables[self.gw(request)]))

    async def mcp_health(self, request: Request) -> Response:
        return json_response({"data": self.mcp_status(self.gw(request))})

    async def openapi(self, request: Request) -> Response:
        if self._spec is None:
            self._spec = orjson.dumps(openapi_spec())
        return Response(self._spec, media_type="application/json")

    def _show(self, gw: str, items: list[Entity]) -> Callable[[Entity], dict[str, Any]]:
        """``present``, with each rule's place in the running order."""
        places = positions(self.runtime.tables[gw], items)
        return lambda entity: present(entity, places)

    async def list_kind(self, request: Request) -> Response:
        kind = self._kind(request)
        gw = self.gw(request)
        items = self.everything(gw, await self.records(gw))[kind]
        return json_response(paging.page(request, items, self._show(gw, items)))

    async def get(self, request: Request) -> Response:
        kind = self._kind(request)
        gw = self.gw(request)
        items = self.everything(gw, await self.records(gw))[kind]
        entity = self.find(items, kind, request.path_params["ref"])
        return json_response(self._show(gw, [entity])(entity), etag=entity.etag)

    # -- writing ----------------------------------------------------------------

    def store(self) -> Store:
        if self.runtime.store is None:
            raise Conflict(
                f"This gateway has no store (gateway.store), so its entities come from "
                f"{self.runtime.file.source} only and are read-only here.",
                code="read_only",
            )
        return self.runtime.store

    def writable(self, entity: Entity, request: Request) -> None:
        plural = PLURAL.get(entity.kind, "gateways")
        if entity.record is None:
            raise Conflict(
                f"{plural}/{entity.name} comes from {self.runtime.file.source} "
                "and is read-only here; edit the file instead.",
                code="read_only",
            )
        if not _matches(request.headers.get("if-match"), entity.etag):
            raise PreconditionFailed(
                f"{plural}/{entity.name} has changed (its ETag is now {entity.etag})."
            )

    @staticmethod
    async def body(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise InvalidRequest("The body is not valid JSON.", code="invalid_json") from None
        if not isinstance(body, dict):
            raise Unprocessable([("", "the body must be a JSON object")])
        return body

    def build(self, gw: str, records: list[Record], kind: str, id: str) -> Built:
        """The config with the change; refused if it leaves out or shadows anything it did
        not before, or the written entity ``id`` itself (admin/checks.py)."""
        file = self.runtime.file_of(gw)
        running = self.runtime.tables.get(gw)
        try:
            built = build(file, records, self.runtime.vault, running, self.runtime.key_secret)
        except ConfigError as exc:
            raise Unprocessable(_issues(exc)) from None
        refuse_new_issues(built, running, id)
        return built

    async def create(self, request: Request) -> Response:
        kind = self._kind(request)
        body = await self.body(request)
        return await self._put(request, kind, body, None, patch=False)

    async def replace(self, request: Request) -> Response:
        return await self._update(request, patch=False)

    async def patch(self, request: Request) -> Response:
        return await self._update(request, patch=True)

    async def _update(self, request: Request, patch: bool) -> Response:
        kind = self._kind(request)
        body = await self.body(request)
        return await self._put(request, kind, body, request.path_params["ref"], patch)

    async def _put(
        self, request: Request, kind: str, body: dict[str, Any], ref: str | None, patch: bool
    ) -> Response:
        store = self.store()
        gw = self.gw(request)
        # Serialised with reloads in this process; across instances the store's
        # version check (``expected_version``) catches a concurrent write.
        async with self.runtime.lock:
            records = await store.entities(gw)
            everything = self.everything(gw, records)
            existing = self.find(everything[kind], kind, ref) if ref is not None else None
            if existing is not None:
                self.writable(existing, request)
            doc = merge_input(kind, body, existing, patch)
            if kind == "rule":
                refuse_undeclared_catch_all(doc, existing.doc if existing is not None else None)
            if kind == "mcp_server" and doc.get("command") is not None:
                # Whoever holds the admin key must not run programs on the gateway's host.
                raise Unprocessable(
                    [("command", "stdio MCP servers come from the config file only; give url")]
                )
            name = doc.get("name")
            if not isinstance(name, str):
                raise Unprocessable([("name", "required" if name is None else "must be a string")])
            if new_secrets(doc) and not self.runtime.vault.enabled:
                raise secret_refused(new_secrets(doc))
            self._check_name(kind, name, existing, everything)
            renamed = existing is not None and name != existing.name
            if kind == "consumer" and renamed and keys_of(records, existing.name):  # type: ignore[union-attr]
                raise Conflict(
                    f"consumers/{name} cannot be renamed: it holds minted keys.", code="in_use"
                )
            id = existing.id if existing is not None else str(uuid.uuid4())
            now = datetime.now(UTC)
            tags = doc.get("tags")
            candidate = Record(
                id=id,
                gateway=gw,
                kind=kind,
                name=name,
                doc=doc,
                tags=tuple(tags) if isinstance(tags, list) else (),
                created_at=existing.record.created_at if existing and existing.record else now,
                updated_at=now,
                version=existing.record.version if existing and existing.record else 0,
            )
            if existing is None:
                candidates = [*records, candidate]
            else:
                candidates = [candidate if r.id == id else r for r in records]
            built = self.build(gw, candidates, kind, id)
            stored = seal(kind, doc, self.runtime.vault, self.runtime.key_secret)
            tag_list = [str(t) for t in candidate.tags]
            try:
                if existing is None:
                    record: Record | None = await store.create(gw, kind, id, name, stored, tag_list)
                else:
                    record = await store.update(
                        gw, kind, id, name, stored, tag_list, candidate.version
                    )
            except DuplicateName:
                raise Conflict(
                    f"A {kind} named '{name}' already exists.", code="name_taken"
                ) from None
            if record is None:
                raise PreconditionFailed(f"{PLURAL[kind]}/{name} was changed by another writer.")
            await self.runtime.install(built.loaded, built.table)
        entity = Entity(kind, record.id, record.name, record.doc, record)
        shown = self._show(gw, [entity])(entity)
        return json_response(shown, 201 if existing is None else 200, etag=entity.etag)

    def _check_name(
        self, kind: str, name: str, existing: Entity | None, everything: dict[str, list[Entity]]
    ) -> None:
        for other in everything[kind]:
            if other.name == name and (existing is None or other.id != existing.id):
                where = f" (in {self.runtime.file.source})" if other.record is None else ""
                raise Conflict(f"A {kind} named '{name}' already exists{where}.", code="name_taken")
        if existing is not None and name != existing.name:
            users = referrers(kind, existing, everything)
            if users:
                raise Conflict(
                    f"{PLURAL[kind]}/{existing.name} cannot be renamed: it is used by "
                    f"{', '.join(users)}.",
                    code="in_use",
                )

    async def delete(self, request: Request) -> Response:
        kind = self._kind(request)
        store = self.store()
        gw = self.gw(request)
        async with self.runtime.lock:
            records = await store.entities(gw)
            everything = self.everything(gw, records)
            entity = self.find(everything[kind], kind, request.path_params["ref"])
            self.writable(entity, request)
            users = referrers(kind, entity, everything)
            if users:
                raise Conflict(
                    f"{PLURAL[kind]}/{entity.name} is used by {', '.join(users)}; "
                    "change or delete those first.",
                    code="in_use",
                )
            assert entity.record is not None
            # A consumer's minted keys go with it: a consumer made again under the
            # same name must not bring them back.
            keys = [r for r in keys_of(records, entity.name)] if kind == "consumer" else []
            gone = {entity.id, *(r.id for r in keys)}
            built = self.build(gw, [r for r in records if r.id not in gone], kind, entity.id)
            changes = [Change("delete", "key", r.id, r.name, {}, (), r.version) for r in keys]
            changes.append(
                Change("delete", kind, entity.id, entity.name, {}, (), entity.record.version)
            )
            try:
                await store.write_many(gw, changes)
            except StaleWrite:
                raise PreconditionFailed(
                    f"{PLURAL[kind]}/{entity.name} was changed by another writer."
                ) from None
            await self.runtime.install(built.loaded, built.table)
        return Response(status_code=204)
