"""``/admin/models``: the model catalog routing and costs read, and its store overrides.

``GET`` lists every model the running table knows (built-in, the file's ``models:`` and
``pricing:``, the store's) with its window, prices and capabilities and where its
entry comes from. ``PUT /admin/models/{name}`` writes a store entry over the built-in
one (the same fields as ``models:``; those left out keep the built-in values), ``DELETE``
removes it. The file's entries are read-only here, as the file's entities are.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin.entities import json_response
from sluicegate.config.load import validation_issues
from sluicegate.config.routing import ModelSpec
from sluicegate.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from sluicegate.providers.models import ModelInfo
from sluicegate.stores.base import Change, DuplicateName, Record, StaleWrite

if TYPE_CHECKING:
    from sluicegate.admin.api import AdminApi

KIND = "model"


def shown(name: str, info: ModelInfo, source: str) -> dict[str, Any]:
    price = info.price
    return {
        "name": name,
        "context_window": info.context_window,
        "max_output": info.max_output,
        "input": price.input if price else None,
        "output": price.output if price else None,
        "cached_input": price.cached_input if price else None,
        "cache_write": price.cache_write if price else None,
        "reasoning": price.reasoning if price else None,
        "audio_input": price.audio_input if price else None,
        "capabilities": sorted(info.capabilities) if info.capabilities is not None else None,
        "description": info.description,
        "source": source,
    }


class ModelEndpoints:
    def __init__(self, api: AdminApi) -> None:
        self.api = api

    def routes(self, prefix: str) -> list[Route]:
        return [
            Route(f"{prefix}/models", self.list, methods=["GET"]),
            Route(f"{prefix}/models/{{name:path}}", self.get, methods=["GET"]),
            Route(f"{prefix}/models/{{name:path}}", self.put, methods=["PUT"]),
            Route(f"{prefix}/models/{{name:path}}", self.delete, methods=["DELETE"]),
        ]

    def _sources(self, gw: str, records: list[Record]) -> dict[str, str]:
        file = self.api.runtime.file_of(gw).config
        out = {r.name: "store" for r in records if r.kind == KIND}
        out.update(dict.fromkeys(file.pricing, "file"))
        out.update(dict.fromkeys(file.models, "file"))
        return out

    async def list(self, request: Request) -> Response:
        gw = self.api.gw(request)
        sources = self._sources(gw, await self.api.records(gw))
        table = self.api.runtime.tables[gw]
        data = [shown(n, i, sources.get(n, "builtin")) for n, i in table.models.items()]
        return json_response({"data": data, "next": None})

    async def get(self, request: Request) -> Response:
        gw = self.api.gw(request)
        name = request.path_params["name"]
        info = dict(self.api.runtime.tables[gw].models.items()).get(name)
        if info is None:
            raise NotFound(f"No model named '{name}' in the catalog.", code="model_not_found")
        sources = self._sources(gw, await self.api.records(gw))
        return json_response(shown(name, info, sources.get(name, "builtin")))

    def _refuse_file(self, gw: str, name: str) -> None:
        file = self.api.runtime.file_of(gw)
        if name in file.config.models or name in file.config.pricing:
            raise Conflict(
                f"models/{name} comes from {file.source} and is read-only here; "
                "edit the file instead.",
                code="read_only",
            )

    async def put(self, request: Request) -> Response:
        api = self.api
        store = api.store()
        gw = api.gw(request)
        name = request.path_params["name"]
        body = await api.body(request)
        body = {k: v for k, v in body.items() if k not in ("name", "source")}
        try:
            doc = ModelSpec.model_validate(body).model_dump(mode="json", exclude_none=True)
        except ValidationError as exc:
            issues = [issue.partition(": ") for issue in validation_issues(exc)]
            raise Unprocessable([(path, message) for path, _, message in issues]) from None
        self._refuse_file(gw, name)
        async with api.runtime.lock:
            records = await store.entities(gw)
            existing = next((r for r in records if r.kind == KIND and r.name == name), None)
            now = datetime.now(UTC)
            id = existing.id if existing is not None else str(uuid.uuid4())
            candidate = Record(
                id, gw, KIND, name, doc, (), existing.created_at if existing else now, now, 0
            )
            others = [r for r in records if r.id != id]
            built = api.build(gw, [*others, candidate], KIND, id)
            try:
                if existing is None:
                    await store.create(gw, KIND, id, name, doc, [])
                else:
                    stored = await store.update(gw, KIND, id, name, doc, [], existing.version)
                    if stored is None:
                        raise PreconditionFailed(f"models/{name} was changed by another writer.")
            except DuplicateName:
                raise Conflict(f"models/{name} was written by another writer.") from None
            await api.runtime.install(built.loaded, built.table)
        info = dict(built.table.models.items())[name]
        return json_response(shown(name, info, "store"), 201 if existing is None else 200)

    async def delete(self, request: Request) -> Response:
        api = self.api
        store = api.store()
        gw = api.gw(request)
        name = request.path_params["name"]
        self._refuse_file(gw, name)
        async with api.runtime.lock:
            records = await store.entities(gw)
            existing = next((r for r in records if r.kind == KIND and r.name == name), None)
            if existing is None:
                raise NotFound(
                    f"No store entry for model '{name}' (built-in entries cannot be deleted).",
                    code="model_not_found",
                )
            built = api.build(gw, [r for r in records if r.id != existing.id], KIND, existing.id)
            change = Change("delete", KIND, existing.id, name, {}, (), existing.version)
            try:
                await store.write_many(gw, [change])
            except StaleWrite:
                raise PreconditionFailed(f"models/{name} was changed by another writer.") from None
            await api.runtime.install(built.loaded, built.table)
        return Response(status_code=204)
