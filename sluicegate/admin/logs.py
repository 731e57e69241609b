"""The audit log in the Admin API: ``/admin/logs``, ``/admin/logs/{id}``, ``/admin/usage``
(docs/observability.md).

A row is addressed by its own id (the writer's, unique); its request id is the
``x-request-id`` of the answer, which a client may choose and share with other
requests, so it is only a filter. ``LogEndpoints`` serves these paths beside
``AdminApi`` and uses its steps (which gateway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin import paging
from sluicegate.admin.entities import json_response
from sluicegate.errors import Conflict, InvalidRequest, NotFound
from sluicegate.stores.base import (
    AUDIT_BODY_COLUMNS,
    AUDIT_COLUMNS,
    AUDIT_FILTERS,
    USAGE_GROUPS,
    AuditQuery,
    Store,
    UsageQuery,
)

if TYPE_CHECKING:
    from sluicegate.admin.context import AdminSteps


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _log(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as the API shows it: ``ts`` in ISO 8601, the attempts as an array;
    with its bodies when it has them (``audit.log_bodies``)."""
    out = {name: _ts(row[name]) if name == "ts" else row[name] for name in AUDIT_COLUMNS}
    tried = out["attempts_detail"]
    out["attempts_detail"] = orjson.loads(tried) if tried is not None else None
    if row.get("request_body") is not None or row.get("response_body") is not None:
        out.update((name, row[name]) for name in AUDIT_BODY_COLUMNS)
    return out


# /admin/usage filters: every audit filter but the request id (a group of one row).
_USAGE_FILTERS = tuple(name for name in AUDIT_FILTERS if name != "request_id")


def _audit_equal(query: Any, names: tuple[str, ...], gateway: str) -> dict[str, str | int]:
    equal: dict[str, str | int] = {"gateway": gateway}
    for name in names:
        value = query.get(name)
        if value is None:
            continue
        if name == "status":
            if not value.isdigit() or len(value) > 3:
                raise InvalidRequest("status: must be an HTTP status, e.g. 200", param=name)
            equal[name] = int(value)
        elif "\x00" in value:  # no stored value has one, and PostgreSQL refuses it in text
            raise InvalidRequest(f"{name}: must not contain NUL", param=name)
        else:
            equal[name] = value
    return equal


def _parse_moment(value: str) -> datetime:
    try:
        if value.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(value), UTC)
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        raise ValueError(value) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _moment(query: Any, name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return _parse_moment(value)
    except ValueError:
        raise InvalidRequest(
            f"{name}: use ISO 8601 (2025-01-31T12:00:00Z) or unix seconds", param=name
        ) from None


def _log_cursor(cursor: str) -> tuple[datetime, str]:
    ts, sep, id = paging.after(cursor).partition("|")
    try:
        if not sep or not id:
            raise ValueError(cursor)
        return _parse_moment(ts), id
    except ValueError:
        raise InvalidRequest("after: not a cursor this API returned", param="after") from None


class LogEndpoints:
    def __init__(self, api: AdminSteps) -> None:
        self.api = api

    def routes(self, base: str) -> list[Route]:
        return [
            Route(f"{base}/logs", self.logs, methods=["GET"]),
            Route(f"{base}/logs/{{id:str}}", self.log, methods=["GET"]),
            Route(f"{base}/usage", self.usage, methods=["GET"]),
        ]

    def _audit_store(self) -> Store:
        store = self.api.runtime.audit_store
        if store is None:
            raise Conflict(
                "This gateway keeps no audit log: it needs gateway.store (or audit.path).",
                code="audit_log_off",
            )
        return store

    async def logs(self, request: Request) -> Response:
        store = self._audit_store()
        query = request.query_params
        limit = paging.limit(query.get("limit"))
        equal = _audit_equal(query, AUDIT_FILTERS, self.api.gw(request))
        before = _log_cursor(query["after"]) if query.get("after") else None
        since = _moment(query, "since")
        until = _moment(query, "until")
        rows = await store.audit(AuditQuery(equal, since, until, before, limit + 1))
        page = rows[:limit]
        more = len(rows) > limit
        return json_response(
            {
                "data": [_log(row) for row in page],
                "next": paging.cursor(f"{_ts(page[-1]['ts'])}|{page[-1]['id']}") if more else None,
            }
        )

    async def log(self, request: Request) -> Response:
        id = request.path_params["id"]
        store = self._audit_store()
        gateway = self.api.gw(request)
        rows = []
        if "\x00" not in id:  # no row id has one, and PostgreSQL refuses it in text
            equal: dict[str, str | int] = {"gateway": gateway, "id": id}
            rows = await store.audit(AuditQuery(equal, limit=1, bodies=True))
        if not rows:
            raise NotFound(
                f"No audit row with id '{id}' (a request id is a filter: "
                "GET /admin/logs?request_id=...).",
                code="log_not_found",
            )
        return json_response(_log(rows[0]))

    async def usage(self, request: Request) -> Response:
        store = self._audit_store()
        query = request.query_params
        group_by = query.get("group_by") or "consumer"
        if group_by not in USAGE_GROUPS:
            raise InvalidRequest(f"group_by: one of {', '.join(USAGE_GROUPS)}", param="group_by")
        limit = query.get("limit") or str(paging.MAX_LIMIT)
        usage = UsageQuery(
            group_by,
            _audit_equal(query, _USAGE_FILTERS, self.api.gw(request)),
            _moment(query, "since"),
            _moment(query, "until"),
            paging.limit(limit),
        )
        rows = await store.audit_usage(usage)
        return json_response({"group_by": group_by, "data": rows})
