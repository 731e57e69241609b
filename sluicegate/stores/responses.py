"""Stored Responses API responses (``/v1/responses``), as the store keeps them.

A row holds one response as its client was sent it and the input items it answered
(the turns before it included), so that a follow-up naming it by
``previous_response_id`` is rebuilt from this one row. Rows belong to a gateway and a
consumer and expire (``gateway.responses_ttl``); expired rows are never read and are
deleted in small batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class KeptResponse:
    id: str  # resp_…, the gateway's own
    gateway: str
    consumer: str
    created_at: float  # unix seconds
    expires_at: float  # unix seconds
    response: dict[str, Any]  # the response object, output included
    input: list[dict[str, Any]]  # the input items it answered, earlier turns first

    @property
    def output(self) -> list[dict[str, Any]]:
        items = self.response.get("output")
        return items if isinstance(items, list) else []

    def row(self) -> tuple[str, str, str, float, float, str, str]:
        """The row's values, in ``COLUMNS`` order."""
        return (
            self.id,
            self.gateway,
            self.consumer,
            self.created_at,
            self.expires_at,
            orjson.dumps(self.response).decode(),
            orjson.dumps(self.input).decode(),
        )

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> KeptResponse:
        return cls(
            row[0], row[1], row[2], row[3], row[4], orjson.loads(row[5]), orjson.loads(row[6])
        )


COLUMNS = "id, gateway, consumer, created_at, expires_at, response, input"

SQLITE_PUT = f"INSERT OR REPLACE INTO sluicegate_responses ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
SQLITE_ONE = f"SELECT {COLUMNS} FROM sluicegate_responses WHERE id = ? AND expires_at > ?"
# A follow-up's check that its cached copy was not deleted meanwhile: the key, no JSON.
SQLITE_ALIVE = "SELECT 1 FROM sluicegate_responses WHERE id = ? AND expires_at > ?"
SQLITE_DELETE = "DELETE FROM sluicegate_responses WHERE id = ?"
SQLITE_PURGE = (
    "DELETE FROM sluicegate_responses WHERE id IN (SELECT id FROM sluicegate_responses "
    "WHERE expires_at <= ? LIMIT ?)"
)

POSTGRES_PUT = (
    f"INSERT INTO sluicegate_responses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
    "ON CONFLICT (id) DO UPDATE SET response = excluded.response, input = excluded.input, "
    "expires_at = excluded.expires_at"
)
POSTGRES_ONE = f"SELECT {COLUMNS} FROM sluicegate_responses WHERE id = $1 AND expires_at > $2"
POSTGRES_ALIVE = "SELECT 1 FROM sluicegate_responses WHERE id = $1 AND expires_at > $2"
POSTGRES_DELETE = "DELETE FROM sluicegate_responses WHERE id = $1"
POSTGRES_PURGE = (
    "DELETE FROM sluicegate_responses WHERE id IN (SELECT id FROM sluicegate_responses "
    "WHERE expires_at <= $1 LIMIT $2)"
)
