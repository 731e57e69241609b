"""The data plane's files and batches: one request path for ``/v1/files…``, ``/v1/batches…``
and ``/v1/messages/batches…``, with the gateway's keys, limits, audit rows and traces.

A request is authenticated, counted against the request limits and budgets of the gateway
and its consumer, then served by ``openai_objects`` or ``message_batches``. Objects are
created through a rule (a rule whose ``match.paths`` names the endpoint; Anthropic's batches
also by the models they ask for) and reached afterwards by their signed ids (``ids``), which
name the service that holds them and the consumer that owns them: another consumer's id,
or one changed by hand, is an unknown one (404), and nothing is sent to the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.asgi import (
    JSON,
    NOSNIFF,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    respond_error,
)
from sluicegate.dialects.openai import parse_json_object
from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    TransportError,
)
from sluicegate.files.ids import ObjectIds, ObjectRef
from sluicegate.files.owned import MemoryOwned, Owned, StoreOwned
from sluicegate.files.upstream import Upstream
from sluicegate.files.usage import BatchUsage
from sluicegate.policies.rate_limit import Estimate, Reservation, Who, counting
from sluicegate.proxy.handler import read_headers
from sluicegate.proxy.upstream import NativeResponse
from sluicegate.routing.reach import may_reach
from sluicegate.routing.table import CompiledRule, CompiledService, ConsumerEntry, RoutingTable
from sluicegate.stores.objects import OwnedObject
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.tracing import Tracing
from sluicegate.telemetry.usage import TokenCounts

if TYPE_CHECKING:
    from sluicegate.proxy.handler import Proxy

NOT_FOUND_CODES = {
    "file": "file_not_found",
    "batch": "batch_not_found",
    "message_batch": "not_found",
}
# Answer headers of a file's content or a batch's results that reach the client.
_CONTENT_HEADERS = frozenset({b"content-type", b"content-disposition", b"content-length"})


@dataclass(slots=True)
class ObjectCall:
    """One client request to the files and batches endpoints."""

    api: ObjectsApi
    table: RoutingTable
    consumer: ConsumerEntry
    scope: Scope
    receive: Receive
    send: Send
    out: Headers
    ex: Exchange
    parts: list[str]  # the path after its family: ["file-…", "content"]
    query: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # the client's key, for the rule's limits
    held: list[Reservation] = field(default_factory=list)  # the rules' limits, to settle

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def owner(self) -> str:
        return self.consumer.name

    def mint(self, kind: str, service: CompiledService, upstream: str) -> str:
        ref = ObjectRef(kind, self.table.gateway, service.name, self.owner, upstream)
        return self.api.ids.mint(ref)

    def resolve(self, kind: str, value: str) -> tuple[ObjectRef, CompiledService]:
        """The object an id names, when it is the caller's and its service is still there."""
        ref = self.api.ids.read(kind, value)
        if ref is None or ref.gateway != self.table.gateway or ref.consumer != self.owner:
            raise NotFound(f"No {kind.replace('_', ' ')} with this id.", code=NOT_FOUND_CODES[kind])
        service = self.table.services.get(ref.service)
        if service is None:
            raise NotFound(
                f"The service '{ref.service}' that held this {kind.replace('_', ' ')} is gone.",
                code=NOT_FOUND_CODES[kind],
            )
        if not may_reach(self.table, self.consumer, service.name):
            raise PermissionDenied(
                f"This key may no longer use service '{service.name}'.", code="service_not_allowed"
            )
        return ref, service

    def upstream(self, service: CompiledService) -> Upstream:
        if not any(name == b"x-sluicegate-service" for name, _ in self.out):
            self.out.append((b"x-sluicegate-service", service.name.encode()))
        return Upstream(self.api.proxy.runtime.http, service, self.ex)

    async def admit(self, rule: CompiledRule) -> None:
        """Count this call against the request limits and budgets of ``rule`` (once a rule
        is known: the gateway's and the consumer's were counted on arrival)."""
        limits = counting(rule.limits, tokens=False)
        if limits:
            held = await self.api.proxy.reserve(self.table, limits, self.ex, self.key, {}, self.out)
            if held is not None:
                self.held.append(held)

    def path_rule(self, path: str) -> CompiledRule:
        """The first rule that names ``path`` in ``match.paths`` and that the caller may use."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]}
        named = [r for r in self.table.rules if r.paths is not None and path in r.paths]
        for rule in named:
            if rule.accepts(path, headers) and self.consumer.may_use(rule):
                self.ex.rule = rule.name
                return rule
        if named:
            raise PermissionDenied(f"This key may not use {path}.", code="rule_not_allowed")
        raise NotFound(
            f"No rule serves {path}: add one whose match.paths names it.", code="no_rule_for_path"
        )

    async def body(self) -> dict[str, Any]:
        table = self.table
        declared = read_headers(self.scope["headers"]).content_length
        raw = await read_body(self.receive, table.max_body_bytes, declared, table.body_timeout)
        return parse_json_object(raw)

    async def answer(self, document: dict[str, Any], status: int = 200) -> None:
        self.ex.status = status
        body = orjson.dumps(document)
        self.out.append(JSON)
        await respond(self.send, status, body, self.out)

    async def relay(
        self, response: NativeResponse, usage: BatchUsage | None, row: OwnedObject | None
    ) -> None:
        """A file's content or a batch's results, streamed as they come; with ``usage``, the
        batch's usage is read on the way and recorded once the whole of it has passed."""
        self.ex.status = response.status
        headers = [(k.lower(), v) for k, v in response.raw_headers if k.lower() in _CONTENT_HEADERS]
        await self.send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": headers + self.out,
            }
        )
        try:
            async for chunk in response.chunks():
                if usage is not None:
                    usage.feed(chunk)
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TransportError:
            self.ex.error_type = "upstream_error"
            return  # cut short: the connection closes without an end
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        if usage is not None and row is not None:
            usage.finish()
            if await self.api.owned.claim_object(row.id):
                await self.api.charge(self, usage)


class ObjectsApi:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        runtime = proxy.runtime
        self.ids = ObjectIds.from_env(runtime.key_secret)
        store = runtime.store
        self.owned: Owned = StoreOwned(store) if store is not None else MemoryOwned()

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, table: RoutingTable, family: str
    ) -> None:
        """``family``: ``files``, ``batches`` or ``message_batches``, with the path after it."""
        from sluicegate.files import message_batches, openai_objects

        proxy = self.proxy
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        dialect = "anthropic" if family == "message_batches" else "openai"
        endpoint = "files" if family == "files" else "batches"
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, endpoint, dialect)
        tracing = proxy.tracing
        span = tracing.request_span(headers, endpoint) if tracing is not None else None
        inflight = proxy.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        reservation: Reservation | None = None
        call: ObjectCall | None = None
        started = False
        original_send = send

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await original_send(message)

        try:
            consumer = await proxy.identify(table, incoming.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            limits = counting((*table.limits, *consumer.limits), tokens=False)
            if limits:
                reservation = await proxy.reserve(table, limits, ex, incoming.key, {}, out)
            call = ObjectCall(
                self, table, consumer, scope, receive, tracked, out, ex, _rest(scope, family)
            )
            call.query, call.key = _query(scope), incoming.key
            if family == "message_batches":
                await message_batches.serve(call)
            else:
                await openai_objects.serve(call, family)
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            if not started:
                await respond_error(send, exc, out, dialect)
        finally:
            inflight.dec()
            answered = 200 <= ex.status < 400
            held = [reservation, *(call.held if call is not None else ())]
            for one in held:
                if one is not None:
                    await proxy.limiter(table).settle(one, TokenCounts(), 0.0, answered)
            proxy.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    async def charge(self, call: ObjectCall, usage: BatchUsage) -> None:
        """Record a batch's usage on the request that read its results: its audit row
        (endpoint ``batches``) and the consumer's token limits and budgets. Never refused:
        the tokens are spent already; a limit that is full stays so for longer."""
        ex, table = call.ex, call.table
        ex.endpoint = "batches"
        ex.usage = usage.total()
        ex.model = ex.upstream_model = usage.model
        ex.cost = usage.cost(table.prices)
        if ex.usage is None:
            return
        limits = counting((*table.limits, *call.consumer.limits), requests=False)
        if not limits:
            return
        limiter = self.proxy.limiter(table)
        who = Who(table.gateway, call.owner, "", "", ex.model or "")
        try:
            # One token and one micro-dollar are held, then corrected to what was spent.
            reservation, _ = await limiter.reserve(limits, who, Estimate(1, 0))
        except RateLimited:
            return  # full already
        await limiter.settle(reservation, ex.usage, ex.cost, True)

    async def refresh(
        self,
        call: ObjectCall,
        rows: list[OwnedObject],
        fetch: Any,
        final: frozenset[str],
        status: str,
    ) -> list[dict[str, Any]]:
        """The docs of ``rows``, those not in a ``final`` state asked of their provider again
        (at once, concurrently); a provider that fails leaves the doc as last seen."""

        async def one(row: OwnedObject) -> dict[str, Any]:
            if row.doc.get(status) in final:
                return row.doc
            with contextlib.suppress(GatewayError):
                async with asyncio.timeout(30):
                    doc: dict[str, Any] = await fetch(row)
                    return doc
            return row.doc

        return list(await asyncio.gather(*(one(row) for row in rows)))


def _rest(scope: Scope, family: str) -> list[str]:
    path: str = scope["path"]
    prefix = {
        "files": "/v1/files",
        "batches": "/v1/batches",
        "message_batches": "/v1/messages/batches",
    }[family]
    rest = path[len(prefix) :].strip("/")
    return rest.split("/") if rest else []


def _query(scope: Scope) -> dict[str, str]:
    from urllib.parse import parse_qsl

    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1")))


def first_seen() -> int:
    """Now, in unix microseconds: a row's place in its owner's lists, newest first (a
    provider's ``created_at`` is whole seconds, too coarse to order uploads by)."""
    return time.time_ns() // 1000


def page(
    rows: list[OwnedObject], after: str | None, before: str | None, limit: int
) -> tuple[list[OwnedObject], bool]:
    """One page of ``rows`` (newest first): after the id ``after`` (older ones) or before
    the id ``before`` (newer ones); whether more are left that way."""
    ids = [r.id for r in rows]
    if after is not None:
        start = ids.index(after) + 1 if after in ids else len(rows)
        chosen = rows[start : start + limit]
        return chosen, start + limit < len(rows)
    if before is not None:
        end = ids.index(before) if before in ids else 0
        chosen = rows[max(end - limit, 0) : end]
        return chosen, end - limit > 0
    return rows[:limit], limit < len(rows)


def limit_of(query: dict[str, str], default: int, most: int) -> int:
    value = query.get("limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise InvalidRequest(f"limit must be between 1 and {most}.", param="limit")
    return int(value)
