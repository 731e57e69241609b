"""``/v1/responses…``: the Responses API in front of any provider, its state kept here.

``POST /v1/responses`` goes the one request path (``Proxy.handle``) with a dialect of
its own per request (``dialects.responses``): keys, rules, limits, budgets, cache,
guardrails, fallbacks, audit rows (endpoint ``responses``) and metrics as for chat.
Before the body is parsed, the response a follow-up names (``previous_response_id``)
is read, so that its turns come before the new input; the caller's own only (gateway
and consumer), otherwise 400 ``previous_response_not_found`` as OpenAI answers.
The answer is kept (unless ``store: false``) before the client is sent it complete:
the whole body, or the stream's ``response.completed`` event.

``GET`` and ``DELETE /v1/responses/{id}`` and ``GET …/input_items`` answer the
caller's own kept responses (404 for any other); ``POST /v1/responses/input_tokens``
counts a request's input as the rate limits count it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from sluicegate.asgi import (
    JSON,
    NOSNIFF,
    Headers,
    Receive,
    Scope,
    Send,
    read_body,
    respond,
    respond_error,
)
from sluicegate.dialects.responses import ResponsesDialect
from sluicegate.dialects.responses_items import builtin_tools
from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
)
from sluicegate.policies.rate_limit import counting
from sluicegate.proxy.attempt import Call
from sluicegate.proxy.handler import read_headers
from sluicegate.responses.kept import KeptResponses
from sluicegate.responses.outgoing import Outgoing
from sluicegate.routing.table import ConsumerEntry, RoutingTable
from sluicegate.stores.responses import KeptResponse
from sluicegate.telemetry.exchange import Exchange

if TYPE_CHECKING:
    from sluicegate.proxy.handler import Proxy

log = logging.getLogger("sluicegate")

_LIST_DEFAULT, _LIST_MOST = 20, 100
_COUNTERS = ("input_tokens", "count_tokens")  # the endpoints a provider counts input with


class ResponsesApi:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        runtime = proxy.runtime
        self.kept = KeptResponses(runtime.store, runtime.loaded.config.gateway.responses_ttl)

    async def close(self) -> None:
        await self.kept.close()

    async def handle(self, scope: Scope, receive: Receive, send: Send, table: RoutingTable) -> None:
        method: str = scope["method"]
        rest = scope["path"].partition("/responses")[2]
        if rest == "" and method == "POST":
            await self.create(scope, receive, send, table)
            return
        if rest == "/input_tokens" and method == "POST":
            await self.input_tokens(scope, receive, send, table)
            return
        id, _, tail = rest.removeprefix("/").partition("/")
        if rest and id and tail == "" and method in ("GET", "DELETE"):
            await self.answer(scope, receive, send, table, self.one, id)
            return
        if rest and id and tail == "input_items" and method == "GET":
            await self.answer(scope, receive, send, table, self.input_items, id)
            return
        path = scope["path"]
        error: GatewayError = NotFound(f"Unknown path {method} {path}.", code="unknown_path")
        if rest == "" or tail in ("", "input_items") or rest == "/input_tokens":
            error = MethodNotAllowed(f"Method {method} is not supported on {path}.")
        incoming = read_headers(scope["headers"])
        await respond_error(send, error, [(b"x-request-id", incoming.request_id.encode())])

    # ------------------------------------------------------------ create
    async def create(self, scope: Scope, receive: Receive, send: Send, table: RoutingTable) -> None:
        dialect = ResponsesDialect()

        async def keep() -> None:
            await self._keep(dialect, table.gateway, outgoing.owner)

        outgoing = Outgoing(send, dialect, keep)

        async def prepare(consumer: ConsumerEntry, raw: bytes) -> str | None:
            body = dialect.read(raw)
            await self._history(dialect, body, table, consumer)
            outgoing.keeps = body.get("store", True) is not False
            outgoing.owner = consumer.name
            # Built-in tools run only where OpenAI's own Responses API answers.
            return "responses" if builtin_tools(body) else None

        await self.proxy.handle(
            scope, receive, outgoing, "chat", dialect, table, prepare, label="responses"
        )

    async def _keep(self, dialect: ResponsesDialect, gateway: str, consumer: str) -> None:
        assert dialect.final is not None
        now = time.time()  # created_at is whole seconds: the expiry counts from now
        kept = KeptResponse(
            dialect.id,
            gateway,
            consumer,
            float(dialect.created_at),
            now + self.kept.ttl,
            dialect.final,
            [*dialect.history, *dialect.items],
        )
        try:
            await self.kept.put(kept, dialect.encoded or None)
        except StoreUnavailable:
            # The answer was paid for: the client gets it. This instance still has it.
            log.warning("response %s could not be written to the store", dialect.id)

    # ------------------------------------------------------------ reads
    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: RoutingTable,
        serve: Any,
        *args: str,
    ) -> None:
        """Authenticate, then ``serve``: its answer (a JSON document) or its error."""
        incoming = read_headers(scope["headers"])
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        try:
            consumer = await self.proxy.identify(table, incoming.key, scope)
            document = await serve(scope, receive, table, consumer, *args)
        except GatewayError as exc:
            await respond_error(send, exc, out)
            return
        out.append(JSON)
        await respond(send, 200, orjson.dumps(document), out)

    async def _mine(self, table: RoutingTable, consumer: ConsumerEntry, id: str) -> KeptResponse:
        kept = await self.kept.get(id, table.gateway, consumer.name, cached=False)
        if kept is None:
            raise NotFound(f"Response with id '{id}' not found.", code="response_not_found")
        return kept

    async def one(
        self, scope: Scope, receive: Receive, table: RoutingTable, consumer: ConsumerEntry, id: str
    ) -> dict[str, Any]:
        kept = await self._mine(table, consumer, id)
        if scope["method"] == "DELETE":
            await self.kept.delete(kept)
            return {"id": id, "object": "response", "deleted": True}
        return kept.response

    async def input_items(
        self, scope: Scope, receive: Receive, table: RoutingTable, consumer: ConsumerEntry, id: str
    ) -> dict[str, Any]:
        kept = await self._mine(table, consumer, id)
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        return page(kept.input, query)

    async def input_tokens(
        self, scope: Scope, receive: Receive, send: Send, table: RoutingTable
    ) -> None:
        """Asked of the rule's first target when it can count (OpenAI's and Azure's own
        Responses API, Anthropic); otherwise counted as the rate limits count a prompt
        (docs/limits.md). The
        turns a ``previous_response_id`` names count too. Recorded like any request."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, "input_tokens", "responses")
        try:
            consumer = await self.proxy.identify(table, incoming.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            raw = await read_body(
                receive, table.max_body_bytes, incoming.content_length, table.body_timeout
            )
            dialect = ResponsesDialect()
            await self._history(dialect, dialect.read(raw), table, consumer)
            parsed = dialect.parse("chat", raw)
            rule = self.proxy.match(table, consumer, parsed.model, scope, headers)
            ex.rule, ex.model = rule.name, parsed.model
            # Requests only: no token or spend item is reserved, so nothing needs settling.
            limits = counting(
                (*table.limits, *rule.limits, *consumer.limits), tokens=False, usd=False
            )
            if limits:
                await self.proxy.reserve(table, limits, ex, incoming.key, parsed.canonical, out)
            if rule.guard is not None:  # the provider counts the text it would be sent
                ex.screen = rule.guard.begin(dialect.name, "count_tokens")
                parsed, raw = ex.screen.request(
                    dialect, parsed, raw, headers, self.proxy.prompt_tokens
                )
            first = rule.targets[0].service.adapter
            counts = [e for e in _COUNTERS if first is not None and e in first.endpoints]
            if counts:  # OpenAI's input_tokens, or Anthropic's count_tokens
                call = Call(dialect, counts[0], parsed, raw, False, {}, consumer.name, headers)
                try:
                    await self.proxy.forward(table, rule, call, send, out, ex)
                finally:
                    ex.usage, ex.text_size = None, None  # a count, not tokens used
                return
            tokens = self.proxy.prompt_tokens(parsed.canonical)
            ex.status = 200
            out.append(JSON)
            document = {"object": "response.input_tokens", "input_tokens": tokens}
            await respond(send, 200, orjson.dumps(document), out)
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            await respond_error(send, exc, out)
        finally:
            self.proxy.recorder.record(ex, table)

    async def _history(
        self,
        dialect: ResponsesDialect,
        body: dict[str, Any],
        table: RoutingTable,
        consumer: ConsumerEntry,
    ) -> None:
        """The turns the request's ``previous_response_id`` names, before its input."""
        previous = body.get("previous_response_id")
        if previous is None:
            return
        if not isinstance(previous, str) or not previous:
            raise InvalidRequest(
                "previous_response_id must be a response id", param="previous_response_id"
            )
        kept = await self.kept.get(previous, table.gateway, consumer.name)
        if kept is None:
            raise InvalidRequest(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        dialect.history = [*kept.input, *kept.output]


def page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """OpenAI's list shape over ``items`` (oldest first): ``order`` (default desc),
    ``after`` (an item id), ``limit`` (1 to 100, default 20)."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc", param="order")
    try:
        limit = int(query.get("limit", _LIST_DEFAULT))
    except ValueError:
        raise InvalidRequest("limit must be an integer", param="limit") from None
    if not 1 <= limit <= _LIST_MOST:
        raise InvalidRequest(f"limit must be between 1 and {_LIST_MOST}", param="limit")
    ordered = items if order == "asc" else items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}'.", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": len(ordered) > limit,
    }
