"""The scale-out store: PostgreSQL through asyncpg, shared by every instance."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson

from sluicegate.stores import objects
from sluicegate.stores import responses as kept_sql
from sluicegate.stores.base import (
    AUDIT_ROW_COLUMNS,
    CHANNEL,
    AuditQuery,
    AuditRow,
    Change,
    DuplicateName,
    Record,
    StaleWrite,
    StoreUnreachable,
    Unlisten,
    UsageQuery,
    Wake,
    audit_select,
    audit_where,
    usage_sql,
)
from sluicegate.stores.migrations import ADVISORY_LOCK_KEY, META_TABLE, POSTGRES
from sluicegate.stores.objects import OwnedObject
from sluicegate.stores.responses import KeptResponse

_COLUMNS = (
    "id::text AS id, gateway, kind, name, doc::text AS doc, tags::text AS tags, "
    "created_at, updated_at, version"
)


def _record(row: Any) -> Record:
    return Record(
        id=row["id"],
        gateway=row["gateway"],
        kind=row["kind"],
        name=row["name"],
        doc=orjson.loads(row["doc"]),
        tags=tuple(orjson.loads(row["tags"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


_BUMP = "UPDATE sluicegate_meta SET value = value + 1 WHERE key = 'config_version'"
_ENSURE_GATEWAY = "INSERT INTO sluicegate_gateways (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
_INSERT = (
    "INSERT INTO sluicegate_entities (id, gateway, kind, name, doc, tags, created_at, "
    "updated_at, version) VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, 1) "
    f"RETURNING {_COLUMNS}"
)
_UPDATE = (
    "UPDATE sluicegate_entities SET name = $1, doc = $2::jsonb, tags = $3::jsonb, "
    "updated_at = $4, created_at = COALESCE($9, created_at), version = version + 1 "
    "WHERE id = $5::uuid AND gateway = $6 AND kind = $7 AND version = $8 "
    f"RETURNING {_COLUMNS}"
)
_DELETE = (
    "DELETE FROM sluicegate_entities WHERE id = $1::uuid AND gateway = $2 AND kind = $3 "
    f"AND version = $4 RETURNING {_COLUMNS}"
)


_AUDIT_TYPES = {
    "ts": "timestamptz",
    "status": "int4",
    "latency_ms": "float8",
    "ttft_ms": "float8",
    "input_tokens": "int8",
    "output_tokens": "int8",
    "cached_tokens": "int8",
    "cost_usd": "float8",
    "attempts": "int4",
    "attempts_detail": "jsonb",
    "request_truncated": "bool",
    "response_truncated": "bool",
}
# One statement per batch: a column of values per array, unnested into rows.
_AUDIT_INSERT = (
    f"INSERT INTO sluicegate_audit ({', '.join(AUDIT_ROW_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(
        f"${n}::{_AUDIT_TYPES.get(name, 'text')}[]" for n, name in enumerate(AUDIT_ROW_COLUMNS, 1)
    )
    + ") ON CONFLICT (id) DO NOTHING"
)
_AUDIT_TS = AUDIT_ROW_COLUMNS.index("ts")
_DAY = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
# SKIP LOCKED: instances purging together take different rows instead of waiting on each other.
_PURGE = (
    "DELETE FROM sluicegate_audit WHERE id IN (SELECT id FROM sluicegate_audit "
    "WHERE ts < $1 ORDER BY ts LIMIT $2 FOR UPDATE SKIP LOCKED)"
)


_END_SESSION = (
    "INSERT INTO sluicegate_ended_sessions (digest, expires_at) VALUES ($1, $2) "
    "ON CONFLICT (digest) DO NOTHING"
)
_FORGET_ENDED = "DELETE FROM sluicegate_ended_sessions WHERE expires_at <= now()"
_SESSION_ENDED = "SELECT 1 FROM sluicegate_ended_sessions WHERE digest = $1 AND expires_at > now()"

P = ParamSpec("P")
T = TypeVar("T")

# What a server that is down, unreachable, restarting or out of connections raises (the
# pool connects lazily, so any call may be the one that finds out).
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def _reached(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """The store method, raising ``StoreUnreachable`` when the server does not answer."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise StoreUnreachable(type(exc).__name__) from exc

    return call


async def _bump(conn: Any, gateway: str) -> None:
    # Both in the writer's transaction: NOTIFY is delivered at commit, never for a rollback.
    await conn.execute(_BUMP)
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, gateway)


class PostgresStore:
    def __init__(self, url: str) -> None:
        # asyncpg passes unknown query parameters (e.g. ?search_path=x) on as server settings.
        self.url = url
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
        async with self._pool.acquire() as conn, conn.transaction():
            # Held until commit: a second instance starting now waits, then finds it done.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(META_TABLE)
            current = await conn.fetchval(
                "SELECT value FROM sluicegate_meta WHERE key = 'schema_version'"
            )
            current = current or 0
            for version, steps in enumerate(POSTGRES, start=1):
                if version <= current:
                    continue
                for statement in steps:
                    await conn.execute(statement)
            if current < len(POSTGRES):
                await conn.execute(
                    "INSERT INTO sluicegate_meta (key, value) VALUES ('schema_version', $1) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    len(POSTGRES),
                )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    @_reached
    async def _meta(self, key: str) -> int:
        value = await self.pool.fetchval("SELECT value FROM sluicegate_meta WHERE key = $1", key)
        return int(value or 0)

    async def schema_version(self) -> int:
        return await self._meta("schema_version")

    async def config_version(self) -> int:
        return await self._meta("config_version")

    @_reached
    async def ensure_gateway(self, name: str) -> None:
        await self.pool.execute(_ENSURE_GATEWAY, name)

    @_reached
    async def gateways(self) -> list[str]:
        rows = await self.pool.fetch("SELECT name FROM sluicegate_gateways ORDER BY name")
        return [row["name"] for row in rows]

    @_reached
    async def entities(self, gateway: str) -> list[Record]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM sluicegate_entities WHERE gateway = $1 "
            "ORDER BY created_at, id",
            gateway,
        )
        return [_record(row) for row in rows]

    @_reached
    async def _write(
        self, gateway: str, sql: str, *params: Any, new_gateway: bool = False
    ) -> Record | None:
        """One statement in a transaction; with ``new_gateway``, the gateway is made first
        if the store has not seen it (a create)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if new_gateway:
                    await conn.execute(_ENSURE_GATEWAY, gateway)
                row = await conn.fetchrow(sql, *params)
                if row is not None:
                    await _bump(conn, gateway)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateName(str(exc)) from None
        return _record(row) if row is not None else None

    async def create(
        self, gateway: str, kind: str, id: str, name: str, doc: dict[str, Any], tags: list[str]
    ) -> Record:
        now = datetime.now(UTC)
        params = _insert_params(gateway, kind, id, name, doc, tags, now, now)
        record = await self._write(gateway, _INSERT, *params, new_gateway=True)
        assert record is not None
        return record

    async def update(
        self,
        gateway: str,
        kind: str,
        id: str,
        name: str,
        doc: dict[str, Any],
        tags: list[str],
        expected_version: int,
    ) -> Record | None:
        return await self._write(
            gateway,
            _UPDATE,
            *_update_params(gateway, kind, id, name, doc, tags, expected_version, None),
        )

    async def delete(self, gateway: str, kind: str, id: str, expected_version: int) -> bool:
        record = await self._write(gateway, _DELETE, id, gateway, kind, expected_version)
        return record is not None

    @_reached
    async def write_many(self, gateway: str, changes: Sequence[Change]) -> None:
        now = datetime.now(UTC)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for change in changes:
                    tags = list(change.tags)
                    if change.op == "create":
                        created = change.created_at or now
                        params = _insert_params(
                            gateway,
                            change.kind,
                            change.id,
                            change.name,
                            change.doc,
                            tags,
                            created,
                            now,
                        )
                        row = await conn.fetchrow(_INSERT, *params)
                    elif change.op == "update":
                        params = _update_params(
                            gateway,
                            change.kind,
                            change.id,
                            change.name,
                            change.doc,
                            tags,
                            change.version,
                            change.created_at,
                        )
                        row = await conn.fetchrow(_UPDATE, *params)
                    else:
                        row = await conn.fetchrow(
                            _DELETE, change.id, gateway, change.kind, change.version
                        )
                    if row is None:  # raising rolls the whole batch back
                        raise StaleWrite(f"{change.kind} '{change.name}' changed meanwhile")
                if changes:
                    await _bump(conn, gateway)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateName(str(exc)) from None

    async def listen(self, wake: Wake) -> Unlisten | None:
        # A connection of its own: a pooled one would be handed to queries meanwhile.
        conn = await asyncpg.connect(self.url)

        def notified(*_: object) -> None:
            wake()

        await conn.add_listener(CHANNEL, notified)

        async def unlisten() -> None:
            with contextlib.suppress(Exception):  # it may be gone with the server already
                await conn.close(timeout=2)

        return unlisten

    @_reached
    async def write_audit(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        columns: list[list[Any]] = [
            [_no_nul(v) for v in values] for values in zip(*rows, strict=True)
        ]
        columns[_AUDIT_TS] = [datetime.fromtimestamp(ts, UTC) for ts in columns[_AUDIT_TS]]
        await self.pool.execute(_AUDIT_INSERT, *columns)

    @_reached
    async def audit(self, query: AuditQuery) -> list[dict[str, Any]]:
        tail, params = audit_where(query, lambda n: f"${n}", lambda moment: moment)
        rows = await self.pool.fetch(audit_select(query) + tail, *params)
        return [dict(row) for row in rows]

    @_reached
    async def audit_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        sql, params = usage_sql(query, _DAY, lambda n: f"${n}", lambda moment: moment)
        rows = await self.pool.fetch(sql, *params)
        # sum() of integers is numeric in PostgreSQL: asyncpg hands back Decimals.
        return [
            {
                "group": row[0],
                "requests": int(row[1]),
                "errors": int(row[2]),
                "input_tokens": int(row[3]),
                "output_tokens": int(row[4]),
                "cached_tokens": int(row[5]),
                "cost_usd": float(row[6]),
            }
            for row in rows
        ]

    @_reached
    async def touch_keys(self, used: Mapping[str, datetime]) -> None:
        await self.pool.executemany(
            "INSERT INTO sluicegate_key_usage (key_id, last_used_at) VALUES ($1, $2) "
            "ON CONFLICT (key_id) DO UPDATE SET last_used_at = "
            "GREATEST(sluicegate_key_usage.last_used_at, excluded.last_used_at)",
            list(used.items()),
        )

    @_reached
    async def key_usage(self) -> dict[str, datetime]:
        rows = await self.pool.fetch("SELECT key_id, last_used_at FROM sluicegate_key_usage")
        return {row["key_id"]: row["last_used_at"] for row in rows}

    @_reached
    async def purge_audit(self, before: datetime, limit: int) -> int:
        status: str = await self.pool.execute(_PURGE, before, limit)
        return int(status.rpartition(" ")[2] or 0)

    @_reached
    async def end_session(self, digest: str, expires: datetime) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_FORGET_ENDED)
            await conn.execute(_END_SESSION, digest, expires)

    @_reached
    async def session_ended(self, digest: str) -> bool:
        return await self.pool.fetchval(_SESSION_ENDED, digest) is not None

    @_reached
    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None:
        sql = objects.POSTGRES_INSERT_NEW if only_new else objects.POSTGRES_UPSERT
        await self.pool.execute(sql, *objects.params(obj, orjson.dumps(obj.doc).decode()))

    @_reached
    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]:
        rows = await self.pool.fetch(objects.POSTGRES_LIST, gateway, consumer, kind)
        return [objects.from_row(row, orjson.loads(row[6])) for row in rows]

    @_reached
    async def owned_object(self, id: str) -> OwnedObject | None:
        row = await self.pool.fetchrow(objects.POSTGRES_ONE, id)
        return None if row is None else objects.from_row(row, orjson.loads(row[6]))

    @_reached
    async def delete_object(self, id: str) -> None:
        await self.pool.execute(objects.POSTGRES_DELETE, id)

    @_reached
    async def claim_object(self, id: str) -> bool:
        status: str = await self.pool.execute(objects.POSTGRES_CLAIM, id)
        return status.rpartition(" ")[2] == "1"

    @_reached
    async def put_response(self, kept: KeptResponse) -> None:
        await self.pool.execute(kept_sql.POSTGRES_PUT, *kept.row())

    @_reached
    async def kept_response(self, id: str, now: float) -> KeptResponse | None:
        row = await self.pool.fetchrow(kept_sql.POSTGRES_ONE, id, now)
        return None if row is None else KeptResponse.of_row(row)

    @_reached
    async def response_alive(self, id: str, now: float) -> bool:
        return await self.pool.fetchval(kept_sql.POSTGRES_ALIVE, id, now) is not None

    @_reached
    async def delete_response(self, id: str) -> None:
        await self.pool.execute(kept_sql.POSTGRES_DELETE, id)

    @_reached
    async def purge_responses(self, now: float, limit: int) -> int:
        status: str = await self.pool.execute(kept_sql.POSTGRES_PURGE, now, limit)
        return int(status.rpartition(" ")[2] or 0)


def _insert_params(
    gateway: str,
    kind: str,
    id: str,
    name: str,
    doc: dict[str, Any],
    tags: list[str],
    created_at: datetime,
    updated_at: datetime,
) -> tuple[Any, ...]:
    return (
        id,
        gateway,
        kind,
        name,
        orjson.dumps(doc).decode(),
        orjson.dumps(tags).decode(),
        created_at,
        updated_at,
    )


def _update_params(
    gateway: str,
    kind: str,
    id: str,
    name: str,
    doc: dict[str, Any],
    tags: list[str],
    expected_version: int,
    created_at: datetime | None,
) -> tuple[Any, ...]:
    return (
        name,
        orjson.dumps(doc).decode(),
        orjson.dumps(tags).decode(),
        datetime.now(UTC),
        id,
        gateway,
        kind,
        expected_version,
        created_at,
    )


def _no_nul(value: Any) -> Any:
    """PostgreSQL's text holds no NUL, and one in a row would refuse its whole batch: a
    name a client made up may hold one. It is kept visible as U+FFFD."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value
