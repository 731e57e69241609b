"""OpenAI's Files and Batches APIs (and Azure OpenAI's), through the gateway.

    POST   /v1/files                    through the first rule naming /v1/files (multipart,
                                        streamed to the provider as it arrives)
    GET    /v1/files                    the caller's own, from the gateway's records
    GET    /v1/files/{id} · DELETE · GET /v1/files/{id}/content
    POST   /v1/batches                  to the service holding its input file
    GET    /v1/batches                  the caller's own, asked again unless finished
    GET    /v1/batches/{id} · POST /v1/batches/{id}/cancel

Every id in an answer is replaced by the gateway's signed one (``ids``); an output or error
file of a batch is recorded as the caller's when the batch first names it, so that reading
it records the batch's usage (``usage``), once.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import GatewayError, InvalidRequest, NotFound
from sluicegate.files.api import ObjectCall, first_seen, limit_of, page
from sluicegate.files.upstream import Upstream, need, segment
from sluicegate.files.usage import BatchUsage
from sluicegate.proxy.handler import read_headers
from sluicegate.proxy.upload import Upload
from sluicegate.routing.reach import refuse_unscreened
from sluicegate.routing.table import CompiledService
from sluicegate.stores.objects import OwnedObject

APIS = ("openai", "azure")
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_FORWARDED = (b"content-type", b"content-length")


async def serve(call: ObjectCall, family: str) -> None:
    method, parts = call.method, call.parts
    if family == "files":
        if not parts:
            if method == "POST":
                return await create_file(call)
            if method == "GET":
                return await list_files(call)
        elif len(parts) == 1:
            if method == "GET":
                return await get_file(call, parts[0])
            if method == "DELETE":
                return await delete_file(call, parts[0])
        elif len(parts) == 2 and parts[1] == "content" and method == "GET":
            return await file_content(call, parts[0])
    else:
        if not parts:
            if method == "POST":
                return await create_batch(call)
            if method == "GET":
                return await list_batches(call)
        elif len(parts) == 1 and method == "GET":
            return await get_batch(call, parts[0])
        elif len(parts) == 2 and parts[1] == "cancel" and method == "POST":
            return await cancel_batch(call, parts[0])
    raise NotFound(f"Unknown path {method} {call.scope['path']}.", code="unknown_path")


def _file_doc(call: ObjectCall, service: CompiledService, doc: dict[str, Any]) -> dict[str, Any]:
    upstream = doc.get("id")
    if not isinstance(upstream, str):
        raise InvalidRequest("The provider's answer names no file id.")
    return {**doc, "id": call.mint("file", service, upstream)}


def _row(
    call: ObjectCall,
    kind: str,
    service: CompiledService,
    doc: dict[str, Any],
    batch: str | None = None,
) -> OwnedObject:
    return OwnedObject(
        doc["id"], call.table.gateway, call.owner, kind, service.name, first_seen(), doc, batch
    )


async def create_file(call: ObjectCall) -> None:
    rule = call.path_rule("/v1/files")
    refuse_unscreened(rule, call.consumer, "a file upload")
    await call.admit(rule)
    service = rule.pick(call.table.rng).service
    need(service, APIS, "/v1/files")
    upstream = call.upstream(service)
    headers = call.scope["headers"]
    sent = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in _FORWARDED
    }
    table = call.table
    declared = read_headers(headers).content_length
    upload = Upload(call.receive, table.max_body_bytes, declared, table.body_timeout)
    try:
        doc = await upstream.json("POST", "/files", sent, upload.parts(), upload=upload)
    except GatewayError:
        if upload.error is not None:
            raise upload.error from None  # the client's fault, not the provider's
        raise
    doc = _file_doc(call, service, doc)
    await call.api.owned.put_object(_row(call, "file", service, doc))
    await call.answer(doc)


async def list_files(call: ObjectCall) -> None:
    rows = await call.api.owned.owned_objects(call.table.gateway, call.owner, "file")
    purpose = call.query.get("purpose")
    if purpose:
        rows = [r for r in rows if r.doc.get("purpose") == purpose]
    if call.query.get("order") == "asc":
        rows.reverse()
    limit = limit_of(call.query, 10_000, 10_000)
    chosen, more = page(rows, call.query.get("after"), None, limit)
    data = [r.doc for r in chosen]
    await call.answer(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


async def get_file(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("file", value)
    doc = await call.upstream(service).json("GET", "/files/" + segment(ref.upstream))
    doc = _file_doc(call, service, doc)
    held = await call.api.owned.owned_object(doc["id"])
    await call.api.owned.put_object(_row(call, "file", service, doc, held.batch if held else None))
    await call.answer(doc)


async def delete_file(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("file", value)
    doc = await call.upstream(service).json("DELETE", "/files/" + segment(ref.upstream))
    await call.api.owned.delete_object(value)
    await call.answer({**doc, "id": value})


async def file_content(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("file", value)
    upstream = call.upstream(service)
    response = await upstream.open("GET", f"/files/{segment(ref.upstream)}/content")
    await upstream.check(response)
    row = await call.api.owned.owned_object(value)
    usage = None
    if row is not None and row.batch is not None and not row.recorded:
        usage = BatchUsage("openai")  # the output of a batch: its usage is read on the way
    try:
        await call.relay(response, usage, row)
    finally:
        response.release()


async def create_batch(call: ObjectCall) -> None:
    body = await call.body()
    given = body.get("input_file_id")
    if not isinstance(given, str):
        raise InvalidRequest("input_file_id is required.", param="input_file_id")
    try:
        ref, service = call.resolve("file", given)
    except NotFound as exc:
        exc.param = "input_file_id"
        raise
    need(service, APIS, "/v1/batches")
    upstream = call.upstream(service)
    sent = orjson.dumps({**body, "input_file_id": ref.upstream})
    doc = await upstream.json("POST", "/batches", {"content-type": "application/json"}, sent)
    doc = await _batch_doc(call, service, upstream, doc)
    await call.api.owned.put_object(_row(call, "batch", service, doc))
    await call.answer(doc)


async def _batch_doc(
    call: ObjectCall, service: CompiledService, upstream: Upstream, doc: dict[str, Any]
) -> dict[str, Any]:
    """A batch with the gateway's ids; its output and error files recorded as the caller's
    the first time they are named."""
    upstream_id = doc.get("id")
    if not isinstance(upstream_id, str):
        raise InvalidRequest("The provider's answer names no batch id.")
    out = {**doc, "id": call.mint("batch", service, upstream_id)}
    owned = call.api.owned
    for name in ("input_file_id", "output_file_id", "error_file_id"):
        file = doc.get(name)
        if not isinstance(file, str):
            continue
        mine = out[name] = call.mint("file", service, file)
        if name == "input_file_id" or await owned.owned_object(mine) is not None:
            continue
        found = await upstream.json("GET", "/files/" + segment(file))
        row = _row(call, "file", service, {**found, "id": mine}, batch=out["id"])
        await owned.put_object(row, only_new=True)
    return out


async def get_batch(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("batch", value)
    upstream = call.upstream(service)
    doc = await upstream.json("GET", "/batches/" + segment(ref.upstream))
    doc = await _batch_doc(call, service, upstream, doc)
    await call.api.owned.put_object(_row(call, "batch", service, doc))
    await call.answer(doc)


async def cancel_batch(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("batch", value)
    upstream = call.upstream(service)
    doc = await upstream.json("POST", f"/batches/{segment(ref.upstream)}/cancel")
    doc = await _batch_doc(call, service, upstream, doc)
    await call.api.owned.put_object(_row(call, "batch", service, doc))
    await call.answer(doc)


async def list_batches(call: ObjectCall) -> None:
    rows = await call.api.owned.owned_objects(call.table.gateway, call.owner, "batch")
    limit = limit_of(call.query, 20, 100)
    chosen, more = page(rows, call.query.get("after"), None, limit)

    async def fetch(row: OwnedObject) -> dict[str, Any]:
        ref, service = call.resolve("batch", row.id)
        upstream = call.upstream(service)
        doc = await upstream.json("GET", "/batches/" + segment(ref.upstream))
        doc = await _batch_doc(call, service, upstream, doc)
        await call.api.owned.put_object(_row(call, "batch", service, doc))
        return doc

    data = await call.api.refresh(call, chosen, fetch, FINAL, "status")
    await call.answer(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )
