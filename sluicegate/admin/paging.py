"""Pages of Admin API lists: ``?limit=``, and ``?after=`` cursors the API hands out.

A cursor is opaque to clients (URL-safe base64 of where the page stopped), so
that what it holds may change without changing the API.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from sluicegate.admin.entities import Entity
from sluicegate.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def after(value: str) -> str:
    """The name a cursor stands for."""
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except ValueError:  # not ASCII, not base64, not UTF-8 (binascii.Error is one too)
        raise InvalidRequest("after: not a cursor this API returned", param="after") from None


def limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    return int(value)


def _name(entity: Entity) -> str:
    return entity.name


def page(
    request: Request, items: list[Entity], show: Callable[[Entity], dict[str, Any]]
) -> dict[str, Any]:
    """A page of entities by name, after ``?after=`` and with all of ``?tags=``."""
    query = request.query_params
    size = limit(query.get("limit"))
    wanted = {t for t in (query.get("tags") or "").split(",") if t}
    start = after(query["after"]) if query.get("after") else None
    items = sorted(items, key=_name)
    items = [e for e in items if wanted <= set(e.tags) and (start is None or e.name > start)]
    shown = items[:size]
    more = len(items) > size
    return {"data": [show(e) for e in shown], "next": cursor(shown[-1].name) if more else None}
