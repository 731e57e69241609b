"""The store interface and the record it keeps.

A store holds entities (upstreams, services, rules, consumers) of one or more
gateways as JSON documents, a per-entity ``version`` (the ETag) and a global
``config_version`` bumped by every write, so that another instance can tell
that something changed without reading everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sluicegate.errors import SluicegateError
from sluicegate.stores.objects import OwnedObject
from sluicegate.stores.responses import KeptResponse

DEFAULT_GATEWAY = "default"
# PostgreSQL: every write notifies this channel in its own transaction (payload: the gateway).
CHANNEL = "sluicegate_config"


class DuplicateName(SluicegateError):
    """Another entity of the same kind and gateway already has this name."""


class StaleWrite(SluicegateError):
    """An entity of a batch changed or went since it was read; nothing was written."""


class StoreUnreachable(SluicegateError, OSError):
    """The store did not answer: the database is down, unreachable, locked or full. A write
    that raises it was not committed (its transaction rolled back with the connection),
    unless the connection was lost in the instant of the commit itself. The message is the
    cause's type name only: a driver's message may hold a host or a user. An ``OSError``,
    as the drivers' own connection errors are, for callers that catch those."""


@dataclass(frozen=True, slots=True)
class Change:
    """One step of ``Store.write_many``; ``version`` is the one read (update, delete)."""

    op: Literal["create", "update", "delete"]
    kind: str
    id: str
    name: str
    doc: dict[str, Any]
    tags: tuple[str, ...] = ()
    version: int = 0
    # Rules match in creation order, so a batch may set it (create, update) to order them.
    created_at: datetime | None = None


# The audit log's columns, in the order of an ``AuditRow``. ``id`` is the writer's own
# (a request id may come from the client, so it need not be unique); ``ts`` is unix
# seconds in a row and a UTC timestamp in the table.
AUDIT_COLUMNS = (
    "id",
    "request_id",
    "ts",
    "gateway",
    "consumer",
    "key_prefix",
    "rule",
    "service",
    "provider",
    "model",
    "status",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "usage_source",  # provider | counted (the gateway's count: the provider reported none)
    "cost_usd",
    "cache",
    "attempts",
    "error_type",
    "guardrail",  # JSON text: [{"on", "type", "action", "count"}] (docs/guardrails.md)
    "tags",  # JSON text: {tag: value} from transform.tags
    "endpoint",  # chat, completions, embeddings, count_tokens (NULL in rows before it)
    "attempts_detail",  # JSON text: [{"service", "target", "status", "outcome", "ms"}]
    "route",  # why these targets: x-sluicegate-route (docs/routing.md)
)
# Written with a row when ``audit.log_bodies`` is on (NULL otherwise); read only for one
# request (``AuditQuery.bodies``), never for a page of rows.
AUDIT_BODY_COLUMNS = ("request_body", "response_body", "request_truncated", "response_truncated")
# What the writer writes: an ``AuditRow`` holds these, in this order.
AUDIT_ROW_COLUMNS = AUDIT_COLUMNS + AUDIT_BODY_COLUMNS
AUDIT_FILTERS = (
    "request_id",
    "gateway",
    "consumer",
    "key_prefix",
    "rule",
    "service",
    "provider",
    "model",
    "status",
    "cache",
    "error_type",
    "endpoint",
    "usage_source",
)
AuditRow = tuple[Any, ...]
# What ``AuditQuery.equal`` may name: the filters, and the row's own id (one row).
_AUDIT_EQUAL = frozenset({"id", *AUDIT_FILTERS})

# ``GET /admin/usage?group_by=``: the column each grouping reads ("day" is the dialect's).
USAGE_GROUPS = {
    "consumer": "consumer",
    "key": "key_prefix",
    "model": "model",
    "rule": "rule",
    "service": "service",
    "provider": "provider",
    "day": "",
}
USAGE_FIELDS = (
    "group",
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Audit rows newest first; ``equal`` maps names of ``AUDIT_FILTERS`` (or ``id``) to values;
    ``before`` is the ``(ts, id)`` of the last row of the previous page."""

    equal: dict[str, str | int] = field(default_factory=dict)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before: tuple[datetime, str] | None = None
    limit: int = 100
    bodies: bool = False  # also read ``AUDIT_BODY_COLUMNS``


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Audit rows matching ``equal``/``since``/``until``, summed per ``group_by``."""

    group_by: str  # a key of USAGE_GROUPS
    equal: dict[str, str | int] = field(default_factory=dict)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    limit: int = 1000  # groups; the largest cost first (days: oldest first)


def _audit_filters(
    equal: dict[str, str | int],
    since: datetime | None,
    until: datetime | None,
    mark: Callable[[int], str],
    stamp: Callable[[datetime], Any],
) -> tuple[list[str], list[Any], Callable[[Any], str]]:
    clauses: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return mark(len(params))

    for name, value in equal.items():
        if name not in _AUDIT_EQUAL:
            raise ValueError(f"not an audit filter: {name}")
        clauses.append(f"{name} = {param(value)}")
    if since is not None:
        clauses.append(f"ts >= {param(stamp(since))}")
    if until is not None:
        clauses.append(f"ts < {param(stamp(until))}")
    return clauses, params, param


def audit_where(
    query: AuditQuery, mark: Callable[[int], str], stamp: Callable[[datetime], Any]
) -> tuple[str, list[Any]]:
    """The ``WHERE … ORDER BY … LIMIT`` of an audit query; ``mark(n)`` is the dialect's
    n-th placeholder, ``stamp`` turns a moment into the dialect's ``ts`` value."""
    clauses, params, param = _audit_filters(query.equal, query.since, query.until, mark, stamp)
    if query.before is not None:
        ts, id = query.before
        clauses.append(f"(ts, id) < ({param(stamp(ts))}, {param(id)})")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{where} ORDER BY ts DESC, id DESC LIMIT {param(query.limit)}", params


def audit_select(query: AuditQuery) -> str:
    columns = AUDIT_ROW_COLUMNS if query.bodies else AUDIT_COLUMNS
    return f"SELECT {', '.join(columns)} FROM sluicegate_audit"


def usage_sql(
    query: UsageQuery,
    day: str,
    mark: Callable[[int], str],
    stamp: Callable[[datetime], Any],
) -> tuple[str, list[Any]]:
    """One ``GROUP BY`` over the audit table; ``day`` is the dialect's UTC date of ``ts``
    (YYYY-MM-DD). Errors: answered with a 4xx/5xx, or broken off (a stream's error)."""
    if query.group_by not in USAGE_GROUPS:
        raise ValueError(f"not a usage grouping: {query.group_by}")
    key = USAGE_GROUPS[query.group_by] or day
    clauses, params, param = _audit_filters(query.equal, query.since, query.until, mark, stamp)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "1" if query.group_by == "day" else "7 DESC, 2 DESC, 1"
    sql = (
        f"SELECT {key}, count(*), "
        "sum(CASE WHEN status >= 400 OR error_type IS NOT NULL THEN 1 ELSE 0 END), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
        "coalesce(sum(cached_tokens), 0), coalesce(sum(cost_usd), 0) "
        f"FROM sluicegate_audit{where} GROUP BY 1 ORDER BY {order} LIMIT {param(query.limit)}"
    )
    return sql, params


Wake = Callable[[], None]
Unlisten = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    gateway: str
    kind: str  # singular: upstream, service, rule, consumer
    name: str
    doc: dict[str, Any]  # the entity's fields as written (secrets encrypted)
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    version: int


class Store(Protocol):
    """Every method but ``open`` raises ``StoreUnreachable`` when the store does not answer."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (safe from several instances at once)."""

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def config_version(self) -> int: ...

    async def ensure_gateway(self, name: str) -> None: ...

    async def gateways(self) -> list[str]: ...

    async def entities(self, gateway: str) -> list[Record]:
        """Every entity of the gateway, oldest first."""

    async def create(
        self, gateway: str, kind: str, id: str, name: str, doc: dict[str, Any], tags: list[str]
    ) -> Record:
        """Raises ``DuplicateName`` when the name is taken. A gateway the store has not seen
        is made in the same transaction."""

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
        """``None`` when the entity is gone or its version is no longer ``expected_version``."""

    async def delete(self, gateway: str, kind: str, id: str, expected_version: int) -> bool: ...

    async def write_many(self, gateway: str, changes: Sequence[Change]) -> None:
        """The changes, in the order given, in one transaction with one version bump.

        All or nothing: raises ``StaleWrite`` or ``DuplicateName`` and writes nothing.
        """

    async def listen(self, wake: Wake) -> Unlisten | None:
        """Call ``wake`` whenever a write commits anywhere; ``None``: this store cannot (poll)."""

    async def write_audit(self, rows: Sequence[AuditRow]) -> None:
        """Insert audit rows in one transaction; a row whose ``id`` is there already is skipped
        (so that a batch replayed after an unclear failure lands once)."""

    async def audit(self, query: AuditQuery) -> list[dict[str, Any]]:
        """Rows matching the query, newest first: dicts of ``AUDIT_COLUMNS`` (and of
        ``AUDIT_BODY_COLUMNS`` with ``query.bodies``), ``ts`` an aware UTC ``datetime``."""

    async def audit_usage(self, query: UsageQuery) -> list[dict[str, Any]]:
        """Sums per group, computed by the database: dicts of ``USAGE_FIELDS``."""

    async def touch_keys(self, used: Mapping[str, datetime]) -> None:
        """Record when minted keys were last used (a later moment wins; no version bump)."""

    async def key_usage(self) -> dict[str, datetime]:
        """Key id → when it was last used, for the keys used at least once."""

    async def purge_audit(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` rows older than ``before`` (the oldest first, whatever
        their gateway) in one short transaction; the number deleted. Safe from several
        instances at once."""

    async def end_session(self, digest: str, expires: datetime) -> None:
        """Remember a dashboard session ended by logout until ``expires`` (``digest``: the
        SHA-256 of its nonce); sessions past their expiry are forgotten in the same go."""

    async def session_ended(self, digest: str) -> bool:
        """Whether a session that has not expired yet was ended by logout."""

    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None:
        """Keep a consumer's file or batch (``stores.objects``), or its newer ``doc``;
        ``only_new``: leave a row that is there already as it is."""

    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]:
        """A consumer's objects of a kind, newest first (at most ``objects.LIST_LIMIT``)."""

    async def owned_object(self, id: str) -> OwnedObject | None: ...

    async def delete_object(self, id: str) -> None: ...

    async def claim_object(self, id: str) -> bool:
        """Mark a batch's usage recorded; True for the one caller that marked it."""

    async def put_response(self, kept: KeptResponse) -> None:
        """Keep a Responses API response (``stores.responses``), replacing one of its id."""

    async def kept_response(self, id: str, now: float) -> KeptResponse | None:
        """The response of this id unless it expired before ``now`` (unix seconds)."""

    async def response_alive(self, id: str, now: float) -> bool:
        """Whether the response of this id is still kept (not deleted, not expired before
        ``now``): one primary-key lookup, none of its JSON read."""

    async def delete_response(self, id: str) -> None: ...

    async def purge_responses(self, now: float, limit: int) -> int:
        """Delete at most ``limit`` responses expired before ``now``; the number deleted."""
