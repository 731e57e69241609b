"""The embedded store: one SQLite file, reached through the stdlib driver in a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sluicegate.stores import objects
from sluicegate.stores import responses as kept_sql
from sluicegate.stores.base import (
    AUDIT_ROW_COLUMNS,
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
from sluicegate.stores.migrations import META_TABLE, SQLITE
from sluicegate.stores.objects import OwnedObject
from sluicegate.stores.responses import KeptResponse

T = TypeVar("T")

_COLUMNS = "id, gateway, kind, name, doc, tags, created_at, updated_at, version"


def _now() -> str:
    return _stamp(datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    # One fixed form, so that ordering by the text orders by time.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


_INSERT = (
    f"INSERT INTO sluicegate_entities ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
    f"RETURNING {_COLUMNS}"
)
_UPDATE = (
    "UPDATE sluicegate_entities SET name = ?, doc = ?, tags = ?, updated_at = ?, "
    "created_at = COALESCE(?, created_at), version = version + 1 "
    "WHERE id = ? AND gateway = ? AND kind = ? AND version = ? "
    f"RETURNING {_COLUMNS}"
)
_DELETE = (
    "DELETE FROM sluicegate_entities WHERE id = ? AND gateway = ? AND kind = ? "
    f"AND version = ? RETURNING {_COLUMNS}"
)
_BUMP = "UPDATE sluicegate_meta SET value = value + 1 WHERE key = 'config_version'"
_ENSURE_GATEWAY = (
    "INSERT INTO sluicegate_gateways (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
)


_AUDIT_INSERT = (
    f"INSERT INTO sluicegate_audit ({', '.join(AUDIT_ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(AUDIT_ROW_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)
_AUDIT_TS = AUDIT_ROW_COLUMNS.index("ts")
_TRUNCATED = ("request_truncated", "response_truncated")
# ts is ISO 8601 in UTC, so its first ten characters are the day.
_DAY = "substr(ts, 1, 10)"
_PURGE = (
    "DELETE FROM sluicegate_audit WHERE id IN (SELECT id FROM sluicegate_audit "
    "WHERE ts < ? ORDER BY ts LIMIT ?)"
)


_END_SESSION = (
    "INSERT INTO sluicegate_ended_sessions (digest, expires_at) VALUES (?, ?) "
    "ON CONFLICT (digest) DO NOTHING"
)
_FORGET_ENDED = "DELETE FROM sluicegate_ended_sessions WHERE expires_at <= ?"
_SESSION_ENDED = "SELECT 1 FROM sluicegate_ended_sessions WHERE digest = ? AND expires_at > ?"


def _audit_params(row: AuditRow) -> AuditRow:
    ts = row[_AUDIT_TS]
    return (*row[:_AUDIT_TS], _stamp(datetime.fromtimestamp(ts, UTC)), *row[_AUDIT_TS + 1 :])


def _params(gateway: str, change: Change, now: str) -> tuple[str, tuple[Any, ...]]:
    doc, tags = orjson.dumps(change.doc), orjson.dumps(list(change.tags))
    created = _stamp(change.created_at) if change.created_at is not None else None
    if change.op == "create":
        return _INSERT, (
            change.id,
            gateway,
            change.kind,
            change.name,
            doc,
            tags,
            created or now,
            now,
        )
    if change.op == "update":
        return _UPDATE, (
            change.name,
            doc,
            tags,
            now,
            created,
            change.id,
            gateway,
            change.kind,
            change.version,
        )
    return _DELETE, (change.id, gateway, change.kind, change.version)


def _record(row: tuple[Any, ...]) -> Record:
    return Record(
        id=row[0],
        gateway=row[1],
        kind=row[2],
        name=row[3],
        doc=orjson.loads(row[4]),
        tags=tuple(orjson.loads(row[5])),
        created_at=datetime.fromisoformat(row[6]),
        updated_at=datetime.fromisoformat(row[7]),
        version=row[8],
    )


def _wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch to WAL; retried, as SQLite answers "locked" at once (no busy wait) to
    instances that switch a new file together."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # One connection, one statement at a time: SQLite serialises writers anyway.
        self._lock = asyncio.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        conn = self._conn
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, conn)
            except sqlite3.DatabaseError as exc:
                # Locked past the busy timeout, unreadable, full, not a database: the file
                # cannot serve. A constraint or a statement of ours is not that.
                if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
                    raise StoreUnreachable(type(exc).__name__) from exc
                raise

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                _wal(conn)
            return conn

        self._conn = await asyncio.to_thread(connect)
        await self._run(self._migrate)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock first, so a second instance waits here
        # and then sees the steps the first one applied.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(META_TABLE)
            row = conn.execute(
                "SELECT value FROM sluicegate_meta WHERE key = 'schema_version'"
            ).fetchone()
            current = row[0] if row else 0
            for version, steps in enumerate(SQLITE, start=1):
                if version <= current:
                    continue
                for statement in steps:
                    conn.execute(statement)
            if current < len(SQLITE):
                conn.execute(
                    "INSERT INTO sluicegate_meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (len(SQLITE),),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    async def _meta(self, key: str) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM sluicegate_meta WHERE key = ?", (key,)).fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    async def schema_version(self) -> int:
        return await self._meta("schema_version")

    async def config_version(self) -> int:
        return await self._meta("config_version")

    async def ensure_gateway(self, name: str) -> None:
        await self._run(lambda conn: conn.execute(_ENSURE_GATEWAY, (name, _now())))

    async def gateways(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT name FROM sluicegate_gateways ORDER BY name").fetchall()
            return [row[0] for row in rows]

        return await self._run(read)

    async def entities(self, gateway: str) -> list[Record]:
        def read(conn: sqlite3.Connection) -> list[Record]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM sluicegate_entities WHERE gateway = ? "
                "ORDER BY created_at, id",
                (gateway,),
            ).fetchall()
            return [_record(row) for row in rows]

        return await self._run(read)

    @staticmethod
    def _write(
        conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], gateway: str | None = None
    ) -> Record | None:
        """One statement in a transaction; with ``gateway``, that gateway is made first if
        the store has not seen it (a create)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if gateway is not None:
                conn.execute(_ENSURE_GATEWAY, (gateway, _now()))
            row = conn.execute(sql, params).fetchone()
            if row is not None:
                conn.execute(_BUMP)
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise DuplicateName(str(exc)) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return _record(row) if row is not None else None

    async def create(
        self, gateway: str, kind: str, id: str, name: str, doc: dict[str, Any], tags: list[str]
    ) -> Record:
        sql, params = _params(gateway, Change("create", kind, id, name, doc, tuple(tags)), _now())
        record = await self._run(lambda conn: self._write(conn, sql, params, gateway))
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
        change = Change("update", kind, id, name, doc, tuple(tags), expected_version)
        sql, params = _params(gateway, change, _now())
        return await self._run(lambda conn: self._write(conn, sql, params))

    async def delete(self, gateway: str, kind: str, id: str, expected_version: int) -> bool:
        sql, params = _params(gateway, Change("delete", kind, id, "", {}, (), expected_version), "")
        return await self._run(lambda conn: self._write(conn, sql, params)) is not None

    async def write_many(self, gateway: str, changes: Sequence[Change]) -> None:
        now = _now()
        steps = [(change, *_params(gateway, change, now)) for change in changes]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for change, sql, params in steps:
                    if conn.execute(sql, params).fetchone() is None:
                        raise StaleWrite(f"{change.kind} '{change.name}' changed meanwhile")
                if steps:
                    conn.execute(_BUMP)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise DuplicateName(str(exc)) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def listen(self, wake: Wake) -> Unlisten | None:
        return None  # SQLite cannot notify another process: the version poll finds changes

    async def write_audit(self, rows: Sequence[AuditRow]) -> None:
        params = [_audit_params(row) for row in rows]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_AUDIT_INSERT, params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        if params:
            await self._run(write)

    async def audit(self, query: AuditQuery) -> list[dict[str, Any]]:
        tail, params = audit_where(query, lambda n: "?", _stamp)
        sql = audit_select(query) + tail

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description]
            out = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            for item in out:
                item["ts"] = datetime.fromisoformat(item["ts"])
                for name in _TRUNCATED:
                    if item.get(name) is not None:
                        item[name] = bool(item[name])
            return out

        return await self._run(read)

    async def audit_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        sql, params = usage_sql(query, _DAY, lambda n: "?", _stamp)

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [
                {
                    "group": row[0],
                    "requests": row[1],
                    "errors": row[2],
                    "input_tokens": row[3],
                    "output_tokens": row[4],
                    "cached_tokens": row[5],
                    "cost_usd": float(row[6]),
                }
                for row in conn.execute(sql, params).fetchall()
            ]

        return await self._run(read)

    async def touch_keys(self, used: Mapping[str, datetime]) -> None:
        params = [(key_id, _stamp(moment)) for key_id, moment in used.items()]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO sluicegate_key_usage (key_id, last_used_at) VALUES (?, ?) "
                    "ON CONFLICT (key_id) DO UPDATE SET last_used_at = "
                    "max(last_used_at, excluded.last_used_at)",
                    params,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def key_usage(self) -> dict[str, datetime]:
        def read(conn: sqlite3.Connection) -> dict[str, datetime]:
            rows = conn.execute("SELECT key_id, last_used_at FROM sluicegate_key_usage").fetchall()
            return {row[0]: datetime.fromisoformat(row[1]) for row in rows}

        return await self._run(read)

    async def purge_audit(self, before: datetime, limit: int) -> int:
        params = (_stamp(before), limit)

        def purge(conn: sqlite3.Connection) -> int:
            # A short write transaction per batch: writers of other instances (and this
            # one's batched writer) get the file between batches.
            conn.execute("BEGIN IMMEDIATE")
            try:
                count = conn.execute(_PURGE, params).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return count

        return await self._run(purge)

    async def end_session(self, digest: str, expires: datetime) -> None:
        params = (digest, _stamp(expires))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_FORGET_ENDED, (_now(),))
                conn.execute(_END_SESSION, params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def session_ended(self, digest: str) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            return conn.execute(_SESSION_ENDED, (digest, _now())).fetchone() is not None

        return await self._run(read)

    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None:
        sql = objects.SQLITE_INSERT_NEW if only_new else objects.SQLITE_UPSERT
        values = objects.params(obj, orjson.dumps(obj.doc).decode())
        await self._run(lambda conn: conn.execute(sql, values))

    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]:
        def read(conn: sqlite3.Connection) -> list[OwnedObject]:
            rows = conn.execute(objects.SQLITE_LIST, (gateway, consumer, kind)).fetchall()
            return [objects.from_row(row, orjson.loads(row[6])) for row in rows]

        return await self._run(read)

    async def owned_object(self, id: str) -> OwnedObject | None:
        row = await self._run(lambda conn: conn.execute(objects.SQLITE_ONE, (id,)).fetchone())
        return None if row is None else objects.from_row(row, orjson.loads(row[6]))

    async def delete_object(self, id: str) -> None:
        await self._run(lambda conn: conn.execute(objects.SQLITE_DELETE, (id,)))

    async def claim_object(self, id: str) -> bool:
        claimed = await self._run(lambda conn: conn.execute(objects.SQLITE_CLAIM, (id,)).rowcount)
        return bool(claimed)

    async def put_response(self, kept: KeptResponse) -> None:
        values = kept.row()
        await self._run(lambda conn: conn.execute(kept_sql.SQLITE_PUT, values))

    async def kept_response(self, id: str, now: float) -> KeptResponse | None:
        row = await self._run(lambda conn: conn.execute(kept_sql.SQLITE_ONE, (id, now)).fetchone())
        return None if row is None else KeptResponse.of_row(row)

    async def response_alive(self, id: str, now: float) -> bool:
        row = await self._run(
            lambda conn: conn.execute(kept_sql.SQLITE_ALIVE, (id, now)).fetchone()
        )
        return row is not None

    async def delete_response(self, id: str) -> None:
        await self._run(lambda conn: conn.execute(kept_sql.SQLITE_DELETE, (id,)))

    async def purge_responses(self, now: float, limit: int) -> int:
        deleted = await self._run(
            lambda conn: conn.execute(kept_sql.SQLITE_PURGE, (now, limit)).rowcount
        )
        return int(deleted)
