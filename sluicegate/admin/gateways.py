"""Gateways (tenants) as the Admin API shows and takes them.

The default gateway (the file's ``gateway:`` section) and the file's
``gateways:`` are read-only here; gateways created through the API live in the
store as a record of kind ``gateway`` inside their own namespace, next to their
entities. A gateway holds only how requests find it (``hosts``), a description
and tags, and its own ``auth`` (``none``, or ``{jwt: …}`` without a shared secret);
its upstreams, services, rules and consumers are addressed under
``/admin/gateways/{name}/…``.

``GatewayEndpoints`` serves ``/admin/gateways`` beside ``AdminApi`` and uses its
steps (the store, the body, the ETag check). A written gateway is not installed
on its own: every gateway's table is rebuilt from the store, because a new
gateway needs a table of its own and its hosts change where requests go.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin import paging
from sluicegate.admin.entities import Entity, iso_time, json_response, validated
from sluicegate.admin.layers import PLURAL
from sluicegate.config.auth import Auth, JwtAuth, same_tokens
from sluicegate.config.base import Name, Strict
from sluicegate.config.ids import entity_id
from sluicegate.config.load import Loaded
from sluicegate.config.model import HostName, Tenant
from sluicegate.config.tenants import hosts
from sluicegate.errors import ConfigError, Conflict, PreconditionFailed, Unprocessable
from sluicegate.stores.base import Change, Record, StaleWrite

if TYPE_CHECKING:
    from sluicegate.admin.context import AdminSteps

_READ_ONLY = frozenset({"id", "default", "source", "created_at", "updated_at"})


class GatewayDoc(Strict):
    name: Name
    hosts: list[HostName] = Field(default_factory=list)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    auth: Literal["none"] | Auth | None = None  # None: keys only


def shown_auth(auth: Auth) -> Any:
    """A gateway's ``auth`` as the API shows it: ``"none"``, ``{"jwt": …}`` without a shared
    secret (``secret_set`` says there is one), or None for keys only."""
    dumped = auth.model_dump(mode="json", exclude_none=True)
    if not isinstance(dumped, dict):
        return dumped
    jwt = dumped.get("jwt")
    if isinstance(jwt, dict) and jwt.pop("secret", None) is not None:
        jwt["secret_set"] = True
    return dumped or None


def file_gateways(file: Loaded) -> list[Entity]:
    """The default gateway, then the file's ``gateways:``."""
    config = file.config
    name = config.gateway.name
    shown = shown_auth(config.auth)
    default: dict[str, Any] = {"name": name, "hosts": [], "tags": [], "auth": shown}
    out = [Entity("gateway", entity_id("gateway", name), name, default, None)]
    for tenant in config.gateways:
        doc = tenant.model_dump(mode="json", include={"name", "hosts", "description", "tags"})
        doc["auth"] = shown_auth(tenant.auth)
        out.append(Entity("gateway", entity_id("gateway", tenant.name), tenant.name, doc, None))
    return out


def all_gateways(file: Loaded, records: Sequence[Record]) -> list[Entity]:
    found = file_gateways(file)
    known = {e.name for e in found}
    found += [Entity("gateway", r.id, r.name, r.doc, r) for r in records if r.name not in known]
    return found


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The stored document of a gateway: hosts, description and auth (name and tags are
    columns)."""
    doc = validated(GatewayDoc, body)
    validated(Tenant, {"name": doc.name, "auth": doc.auth or {}})  # as the file is checked
    if isinstance(doc.auth, Auth) and doc.auth.jwt is not None and doc.auth.jwt.secret:
        # The store keeps no plaintext secret; the file (from the environment) can.
        raise Unprocessable(
            [("auth.jwt.secret", "not stored through the API; use jwks_url or public_key")]
        )
    stored = doc.model_dump(mode="json", exclude_none=True)
    if not stored.get("auth"):
        stored.pop("auth", None)
    return stored


def _jwt(doc: dict[str, Any]) -> JwtAuth | None:
    value = doc.get("auth")
    return Auth.model_validate(value).jwt if isinstance(value, dict) else None


def check_tokens(doc: dict[str, Any], name: str, file: Loaded, others: Sequence[Entity]) -> None:
    """422 when the gateway would accept the same JWTs as another one (docs/tenants.md)."""
    mine = _jwt(doc)
    if mine is None:
        return
    config = file.config
    known = [(config.gateway.name, config.auth.jwt)]
    known += [(tenant.name, tenant.auth.jwt) for tenant in config.gateways]
    known += [(other.name, _jwt(other.doc)) for other in others if other.record is not None]
    for other, theirs in known:
        if other != name and theirs is not None and same_tokens(mine, theirs):
            issue = (
                f"accepts the same tokens as gateway '{other}' (the same issuer, or one "
                "unset, and a shared or unset audience); give each gateway its own audience"
            )
            raise Unprocessable([("auth.jwt", issue)])


def check_hosts(doc: dict[str, Any], name: str, file: Loaded, others: Sequence[Entity]) -> None:
    """409 when a host already selects another gateway."""
    taken = hosts(file.config)
    for other in others:
        if other.record is not None and other.name != name:
            taken.update(dict.fromkeys(other.doc.get("hosts") or [], other.name))
    for host in doc.get("hosts") or []:
        owner = taken.get(host)
        if owner is not None and owner != name:
            raise Conflict(
                f"The host '{host}' already selects gateway '{owner}'.", code="host_taken"
            )


def present_gateway(entity: Entity, default: str) -> dict[str, Any]:
    fields = {k: v for k, v in entity.doc.items() if k != "auth"}
    doc = GatewayDoc.model_validate({**fields, "name": entity.name, "tags": entity.tags})
    record = entity.record
    return {
        "id": entity.id,
        **doc.model_dump(mode="json"),
        "auth": entity.doc.get("auth"),
        "default": entity.name == default,
        "source": entity.source,
        "created_at": iso_time(record.created_at if record else None),
        "updated_at": iso_time(record.updated_at if record else None),
    }


class GatewayEndpoints:
    def __init__(self, api: AdminSteps) -> None:
        self.api = api
        self.runtime = api.runtime

    def routes(self) -> list[Route]:
        one = "/admin/gateways/{gw:str}"
        return [
            Route("/admin/gateways", self.list_gateways, methods=["GET"]),
            Route("/admin/gateways", self.create_gateway, methods=["POST"]),
            Route(one, self.get_gateway, methods=["GET"]),
            Route(one, self.replace_gateway, methods=["PUT"]),
            Route(one, self.patch_gateway, methods=["PATCH"]),
            Route(one, self.delete_gateway, methods=["DELETE"]),
        ]

    async def _gateway_records(self) -> list[Record]:
        store = self.runtime.store
        if store is None:
            return []
        found = []
        for name in await store.gateways():
            found += [r for r in await store.entities(name) if r.kind == "gateway"]
        return found

    def _show_gateway(self, entity: Entity) -> dict[str, Any]:
        return present_gateway(entity, self.runtime.gateway)

    async def list_gateways(self, request: Request) -> Response:
        items = all_gateways(self.runtime.file, await self._gateway_records())
        return json_response(paging.page(request, items, self._show_gateway))

    async def _find_gateway(self, ref: str) -> tuple[Entity, list[Entity]]:
        items = all_gateways(self.runtime.file, await self._gateway_records())
        return self.api.find(items, "gateway", ref), items

    async def get_gateway(self, request: Request) -> Response:
        entity, _ = await self._find_gateway(request.path_params["gw"])
        return json_response(self._show_gateway(entity), etag=entity.etag)

    async def create_gateway(self, request: Request) -> Response:
        return await self._put_gateway(request, None, patch=False)

    async def replace_gateway(self, request: Request) -> Response:
        return await self._put_gateway(request, request.path_params["gw"], patch=False)

    async def patch_gateway(self, request: Request) -> Response:
        return await self._put_gateway(request, request.path_params["gw"], patch=True)

    async def _put_gateway(self, request: Request, ref: str | None, patch: bool) -> Response:
        store = self.api.store()
        body = {k: v for k, v in (await self.api.body(request)).items() if k not in _READ_ONLY}
        async with self.runtime.lock:
            existing, items = (None, []) if ref is None else await self._find_gateway(ref)
            if existing is None:
                items = all_gateways(self.runtime.file, await self._gateway_records())
            else:
                self.api.writable(existing, request)
                current = {**existing.doc, "name": existing.name, "tags": existing.tags}
                body = {**current, **body} if patch else {"name": existing.name, **body}
                if body.get("name") != existing.name:
                    raise Unprocessable([("name", "a gateway cannot be renamed")])
            doc = validate(body)
            name, tags = doc.pop("name"), doc.pop("tags")
            if existing is None and any(e.name == name for e in items):
                raise Conflict(f"A gateway named '{name}' already exists.", code="name_taken")
            check_hosts(doc, name, self.runtime.file, items)
            check_tokens(doc, name, self.runtime.file, items)
            if existing is None:  # the store makes the gateway with its record, in one go
                record: Record | None = await store.create(
                    name, "gateway", str(uuid.uuid4()), name, doc, tags
                )
            else:
                assert existing.record is not None
                record = await store.update(
                    name, "gateway", existing.id, name, doc, tags, existing.record.version
                )
            if record is None:
                raise PreconditionFailed(f"gateways/{name} was changed by another writer.")
            await self._reload()
        entity = Entity("gateway", record.id, record.name, record.doc, record)
        return json_response(
            self._show_gateway(entity), 201 if existing is None else 200, entity.etag
        )

    async def delete_gateway(self, request: Request) -> Response:
        store = self.api.store()
        async with self.runtime.lock:
            entity, _ = await self._find_gateway(request.path_params["gw"])
            self.api.writable(entity, request)
            records = await store.entities(entity.name)
            # Minted keys go with it: with no consumer left, every one of them is dead.
            keys = [r for r in records if r.kind == "key"]
            held = [r for r in records if r.kind not in ("gateway", "key")]
            if held:
                names = ", ".join(f"{PLURAL.get(r.kind, r.kind + 's')}/{r.name}" for r in held[:10])
                raise Conflict(
                    f"gateways/{entity.name} still holds {names}; delete those first.",
                    code="in_use",
                )
            assert entity.record is not None
            changes = [Change("delete", "key", r.id, r.name, {}, (), r.version) for r in keys]
            changes.append(
                Change("delete", "gateway", entity.id, entity.name, {}, (), entity.record.version)
            )
            try:
                await store.write_many(entity.name, changes)
            except StaleWrite:
                raise PreconditionFailed(
                    f"gateways/{entity.name} was changed by another writer."
                ) from None
            await self._reload()
        return Response(status_code=204)

    async def _reload(self) -> None:
        try:
            await self.runtime.load_store()
        except ConfigError as exc:  # another writer left the store invalid; ours is stored
            raise Unprocessable([("", issue) for issue in exc.issues]) from None
