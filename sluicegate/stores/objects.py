"""The objects consumers own at providers (files, batches), as the store keeps them.

A file or batch id a client holds is signed and names its owner (``files.ids``), so no
read of the store is needed to refuse another consumer's. The store keeps a row per
object for what a provider cannot answer per consumer: listing one consumer's objects,
and whether a batch's usage was recorded already (``recorded``: its results were read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class OwnedObject:
    id: str  # the id the client holds (signed)
    gateway: str
    consumer: str
    kind: str  # file | batch | message_batch
    service: str
    created_at: int  # when the gateway first kept it, in unix microseconds (lists' order)
    doc: dict[str, Any]  # the object as last seen, with the client's ids
    batch: str | None = None  # a batch's output or error file: the batch's id
    recorded: bool = False  # a batch's usage was recorded when its results were read


COLUMNS = "id, gateway, consumer, kind, service, created_at, doc, batch, recorded"
# Newest first; ties by id, so that a page boundary is exact.
LIST_LIMIT = 10_000

SQLITE_UPSERT = (
    f"INSERT INTO sluicegate_objects ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
    "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, "
    "batch = COALESCE(excluded.batch, sluicegate_objects.batch)"
)
SQLITE_INSERT_NEW = (
    f"INSERT INTO sluicegate_objects ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
    "ON CONFLICT (id) DO NOTHING"
)
SQLITE_LIST = (
    f"SELECT {COLUMNS} FROM sluicegate_objects WHERE gateway = ? AND consumer = ? AND kind = ? "
    f"ORDER BY created_at DESC, id DESC LIMIT {LIST_LIMIT}"
)
SQLITE_ONE = f"SELECT {COLUMNS} FROM sluicegate_objects WHERE id = ?"
SQLITE_DELETE = "DELETE FROM sluicegate_objects WHERE id = ?"
SQLITE_CLAIM = "UPDATE sluicegate_objects SET recorded = 1 WHERE id = ? AND recorded = 0"

POSTGRES_UPSERT = (
    f"INSERT INTO sluicegate_objects ({COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, false) "
    "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, "
    "batch = COALESCE(excluded.batch, sluicegate_objects.batch)"
)
POSTGRES_INSERT_NEW = (
    f"INSERT INTO sluicegate_objects ({COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, false) "
    "ON CONFLICT (id) DO NOTHING"
)
POSTGRES_LIST = (
    f"SELECT {COLUMNS} FROM sluicegate_objects WHERE gateway = $1 AND consumer = $2 "
    f"AND kind = $3 ORDER BY created_at DESC, id DESC LIMIT {LIST_LIMIT}"
)
POSTGRES_ONE = f"SELECT {COLUMNS} FROM sluicegate_objects WHERE id = $1"
POSTGRES_DELETE = "DELETE FROM sluicegate_objects WHERE id = $1"
POSTGRES_CLAIM = "UPDATE sluicegate_objects SET recorded = true WHERE id = $1 AND NOT recorded"


def params(obj: OwnedObject, doc: str) -> tuple[Any, ...]:
    """The insert's parameters, in ``COLUMNS`` order but ``recorded``; ``doc`` as JSON text."""
    return (
        obj.id,
        obj.gateway,
        obj.consumer,
        obj.kind,
        obj.service,
        obj.created_at,
        doc,
        obj.batch,
    )


def from_row(row: Any, doc: dict[str, Any]) -> OwnedObject:
    return OwnedObject(
        row[0], row[1], row[2], row[3], row[4], int(row[5]), doc, row[7], bool(row[8])
    )
