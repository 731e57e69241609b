"""Minted keys in the Admin API: list, mint, revoke, rotate (docs/auth.md).

The endpoints live beside ``AdminApi`` and use its reading and writing steps
(which gateway, the store, validation by building the candidate config), so a
key is checked and swapped in exactly like any other entity.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin.entities import Entity, json_response, present_key, validated
from sluicegate.auth.keys import NewKey, belongs, effective_rules, new_doc, status
from sluicegate.config.durations import parse_duration
from sluicegate.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from sluicegate.stores.base import Change, DuplicateName, Record, StaleWrite

if TYPE_CHECKING:
    from sluicegate.admin.context import AdminSteps


def keys_of(records: list[Record], consumer: str) -> list[Record]:
    """The minted keys that name ``consumer``."""
    return [r for r in records if r.kind == "key" and r.doc.get("consumer") == consumer]


def store_id(consumer: Entity) -> str | None:
    """The id a key records for its consumer: a store consumer's own; none for one of the
    file, whose identity is its name."""
    return consumer.id if consumer.record is not None else None


class KeyEndpoints:
    def __init__(self, api: AdminSteps) -> None:
        self.api = api
        self.runtime = api.runtime

    def routes(self, base: str) -> list[Route]:
        return [
            Route(f"{base}/consumers/{{ref:str}}/keys", self.list_keys, methods=["GET"]),
            Route(f"{base}/consumers/{{ref:str}}/keys", self.mint_key, methods=["POST"]),
            Route(f"{base}/keys", self.list_keys, methods=["GET"]),
            Route(f"{base}/keys/{{key:str}}", self.get_key, methods=["GET"]),
            Route(f"{base}/keys/{{key:str}}", self.revoke_key, methods=["DELETE"]),
            Route(f"{base}/keys/{{key:str}}/rotate", self.rotate_key, methods=["POST"]),
        ]

    async def _key_records(self, gw: str) -> list[Record]:
        return [r for r in await self.api.records(gw) if r.kind == "key"]

    async def _show_keys(self, gw: str, records: list[Record]) -> list[dict[str, Any]]:
        used = await self.runtime.store.key_usage() if self.runtime.store is not None else {}
        now = time.time()
        consumers = self.runtime.tables[gw].consumers
        out = []
        for record in records:
            shown = present_key(record, used.get(record.id), now)
            # What the key may really use: never more than its consumer may.
            shown["rules"] = effective_rules(record.doc, consumers.get(record.doc["consumer"]))
            out.append(shown)
        return out

    def _show_new_key(self, gw: str, record: Record) -> dict[str, Any]:
        shown = present_key(record, None, time.time())
        consumer = self.runtime.tables[gw].consumers.get(record.doc["consumer"])
        shown["rules"] = effective_rules(record.doc, consumer)
        return shown

    @staticmethod
    def _find_key(records: list[Record], ref: str) -> Record:
        for record in records:
            if record.id == ref or record.name == ref:
                return record
        raise NotFound(f"No key with id or prefix '{ref}'.", code="key_not_found")

    async def list_keys(self, request: Request) -> Response:
        gw = self.api.gw(request)
        records = await self.api.records(gw)
        keys = [r for r in records if r.kind == "key"]
        ref = request.path_params.get("ref") or request.query_params.get("consumer")
        if ref is not None:
            consumer = self.api.find(self.api.everything(gw, records)["consumer"], "consumer", ref)
            ids = {consumer.name: consumer.id} if consumer.record is not None else {}
            keys = [r for r in keys if belongs(r.doc, (consumer.name,), ids)]
        return json_response({"data": await self._show_keys(gw, keys), "next": None})

    async def get_key(self, request: Request) -> Response:
        gw = self.api.gw(request)
        record = self._find_key(await self._key_records(gw), request.path_params["key"])
        return json_response((await self._show_keys(gw, [record]))[0])

    @staticmethod
    def _new_record(gw: str, doc: dict[str, Any]) -> Record:
        now = datetime.now(UTC)
        return Record(str(uuid.uuid4()), gw, "key", doc["prefix"], doc, (), now, now, 0)

    async def mint_key(self, request: Request) -> Response:
        store = self.api.store()
        gw = self.api.gw(request)
        asked = validated(NewKey, await self.api.body(request))
        async with self.runtime.lock:
            records = await store.entities(gw)
            everything = self.api.everything(gw, records)
            consumer = self.api.find(everything["consumer"], "consumer", request.path_params["ref"])
            key, doc = new_doc(
                consumer.name,
                asked,
                self.runtime.key_secret,
                time.time(),
                consumer_id=store_id(consumer),
            )
            record = self._new_record(gw, doc)
            built = self.api.build(gw, [*records, record], "consumer", consumer.id)
            try:
                await store.create(gw, "key", record.id, record.name, doc, [])
            except DuplicateName:  # two equal prefixes: about one in 2**47
                raise Conflict("Minting collided; try again.", code="name_taken") from None
            await self.runtime.install(built.loaded, built.table)
        # A new key has never been used: its answer needs no read of the store, which
        # could fail after the key was written and leave a key nobody was shown.
        shown = self._show_new_key(gw, record)
        return json_response({**shown, "key": key}, 201)

    async def revoke_key(self, request: Request) -> Response:
        store = self.api.store()
        gw = self.api.gw(request)
        async with self.runtime.lock:
            records = await store.entities(gw)
            record = self._find_key(
                [r for r in records if r.kind == "key"], request.path_params["key"]
            )
            if record.doc.get("revoked_at") is None:
                doc = {**record.doc, "revoked_at": time.time()}
                # Built with the key as revoked (not left out), so that the table that runs
                # next tells its holder so (key_revoked).
                revoked = dataclasses.replace(record, doc=doc)
                kept = [revoked if r.id == record.id else r for r in records]
                built = self.api.build(gw, kept, "consumer", record.id)
                if (
                    await store.update(gw, "key", record.id, record.name, doc, [], record.version)
                    is None
                ):
                    raise PreconditionFailed(f"keys/{record.name} was changed by another writer.")
                await self.runtime.install(built.loaded, built.table)
        return Response(status_code=204)

    async def rotate_key(self, request: Request) -> Response:
        """A successor with the same consumer and restrictions; the old key lives on for
        ``grace`` (default 24h; ``0`` ends it now)."""
        store = self.api.store()
        gw = self.api.gw(request)
        body = await self.api.body(request)
        try:
            grace = parse_duration(body.get("grace", "24h")) if body.get("grace") != 0 else 0.0
        except (ValueError, TypeError):
            raise Unprocessable([("grace", "a duration such as 1h or 30m")]) from None
        async with self.runtime.lock:
            records = await store.entities(gw)
            old = self._find_key(
                [r for r in records if r.kind == "key"], request.path_params["key"]
            )
            if status(old.doc, time.time()) != "active":
                raise Conflict(
                    f"keys/{old.name} is {status(old.doc, time.time())}.", code="key_inactive"
                )
            now = time.time()
            asked = validated(
                NewKey,
                {
                    k: old.doc.get(k)
                    for k in ("name", "rules", "models", "limits", "budget")
                    if old.doc.get(k) is not None
                },
            )
            if old.doc.get("expires_at") is not None:
                asked = asked.model_copy(
                    update={"expires_in": max(old.doc["expires_at"] - now, 1.0)}
                )
            key, doc = new_doc(
                old.doc["consumer"],
                asked,
                self.runtime.key_secret,
                now,
                old.id,
                old.doc.get("consumer_id"),
            )
            record = self._new_record(gw, doc)
            ends = now + grace
            old_doc = dict(old.doc)
            if old_doc.get("expires_at") is None or old_doc["expires_at"] > ends:
                old_doc["expires_at"] = ends
            updated = Record(
                old.id,
                gw,
                "key",
                old.name,
                old_doc,
                (),
                old.created_at,
                datetime.now(UTC),
                old.version,
            )
            candidates = [updated if r.id == old.id else r for r in records] + [record]
            built = self.api.build(gw, candidates, "consumer", old.id)
            changes = [
                Change("update", "key", old.id, old.name, old_doc, (), old.version),
                Change("create", "key", record.id, record.name, doc, (), 0, record.created_at),
            ]
            try:
                await store.write_many(gw, changes)
            except (StaleWrite, DuplicateName):
                raise PreconditionFailed(
                    f"keys/{old.name} was changed by another writer."
                ) from None
            await self.runtime.install(built.loaded, built.table)
        # A new key has never been used: its answer needs no read of the store, which
        # could fail after the key was written and leave a key nobody was shown.
        shown = self._show_new_key(gw, record)
        return json_response({**shown, "key": key}, 201)
