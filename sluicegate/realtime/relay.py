"""``/v1/realtime``: a client's WebSocket session relayed to a provider's Realtime API.

Before the upgrade the gateway does what it does for any request: the key (an
``Authorization`` or ``x-api-key`` header, or the ``openai-insecure-api-key.<key>``
subprotocol browsers use), the rule for the ``model`` in the query (the consumer's allow
lists, fallbacks for a service that cannot be reached), the consumer's limit on open
sessions (``realtime_sessions``), request limits and budgets. Any refusal is an HTTP
answer in the usual error shape, so a client sees why. Then it opens the upstream socket
with the service's credentials, accepts the client's and relays frames both ways as they
come, text and binary.

Each ``response.done`` event's usage is counted against the consumer's token limits and
budgets as it passes; once one is full the session is closed (1008, naming the limit).
When either side ends, the other is closed: the upstream's close code and reason reach
the client, a dropped upstream is a 1011. The session is one audit row (endpoint
``realtime``, status 101) with its tokens and cost, written when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from sluicegate.asgi import Headers, Message, Receive, Scope, Send
from sluicegate.credentials.redact import redact_error
from sluicegate.errors import GatewayError, InvalidRequest, RateLimited, TransportError
from sluicegate.policies.rate_limit import Estimate, Limit, Reservation, Who, counting
from sluicegate.proxy.attempt import Failure
from sluicegate.proxy.handler import read_headers
from sluicegate.realtime.sessions import Seat, Sessions
from sluicegate.realtime.upstream import handshake, socket_url
from sluicegate.routing.reach import refuse_unscreened
from sluicegate.routing.table import (
    CompiledRule,
    ConsumerEntry,
    RoutingTable,
    Step,
    hash_key,
)
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.tracing import Tracing
from sluicegate.telemetry.usage import TokenCounts

if TYPE_CHECKING:
    from sluicegate.proxy.handler import Proxy

KEY_PROTOCOL = "openai-insecure-api-key."
BETA_PROTOCOL = "openai-beta."
_MAX_FRAME = 16 * 1024 * 1024
_DONE = b'"response.done"'
# Close codes an endpoint may send (RFC 6455 7.4): others (1005, 1006, 1015) stand for none.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})


@dataclasses.dataclass(slots=True)
class Offer:
    """What the client's handshake asks for."""

    key: str | None
    protocol: str | None  # the subprotocol to accept: "realtime" when offered
    beta: str | None  # OpenAI-Beta, from the header or the openai-beta.<x> subprotocol
    model: str | None


def read_offer(scope: Scope) -> Offer:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    key = read_headers(headers).key
    offered: list[str] = list(scope.get("subprotocols") or [])
    beta = next((v.decode("latin-1") for k, v in headers if k == b"openai-beta"), None)
    for item in offered:
        if item.startswith(KEY_PROTOCOL) and key is None:
            key = item[len(KEY_PROTOCOL) :]
        elif item.startswith(BETA_PROTOCOL) and beta is None:
            beta = item[len(BETA_PROTOCOL) :].replace("-", "=", 1)  # realtime-v1: realtime=v1
    protocol = "realtime" if "realtime" in offered else None
    query: bytes = scope.get("query_string", b"")
    model = None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name in (b"model", b"deployment") and value:
            model = unquote(value.decode("latin-1"))
    return Offer(key, protocol, beta, model)


class Realtime:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.sessions = Sessions()

    async def handle(self, scope: Scope, receive: Receive, send: Send, table: RoutingTable) -> None:
        proxy = self.proxy
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode())]
        ex = Exchange(incoming.request_id, table.gateway, "realtime", "openai")
        ex.stream = True
        tracing = proxy.tracing
        span = tracing.request_span(headers, "realtime") if tracing is not None else None
        inflight = proxy.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        reservation: Reservation | None = None
        seat: Seat | None = None
        try:
            offer = read_offer(scope)
            consumer = await proxy.identify(table, offer.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            if offer.model is None:
                raise InvalidRequest("Name a model: /v1/realtime?model=<model>.", param="model")
            rule = proxy.match(
                table, consumer, offer.model, {"path": "/v1/realtime"}, headers, ex.request_id
            )
            ex.rule, ex.model = rule.name, offer.model
            refuse_unscreened(rule, consumer, "a realtime session's frames")
            limits = (*table.limits, *rule.limits, *consumer.limits)
            if limits:
                reservation = await self.reserve(table, limits, ex, offer.key)
            seat = await self.sessions.begin(
                table.gateway, consumer.name, consumer.realtime_sessions, table.redis
            )
            upstream, step = await self.open(table, rule, consumer, offer, ex)
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            await _refuse(scope, send, exc, out)
            upstream = None
        try:
            if upstream is not None:
                out.append((b"x-sluicegate-service", step.service.name.encode()))
                out.append((b"x-sluicegate-attempts", str(ex.attempts).encode()))
                accept: Message = {"type": "websocket.accept", "headers": out}
                if offer.protocol is not None:
                    accept["subprotocol"] = offer.protocol
                await send(accept)
                ex.status = 101
                ex.first_token = time.perf_counter() - ex.started
                session = Session(self, table, consumer, rule, ex, upstream, receive, send)
                await session.run(step.service.timeouts.stream)
        finally:
            inflight.dec()
            if seat is not None:
                await self.sessions.end(seat)
            if reservation is not None:
                await proxy.limiter(table).settle(reservation, TokenCounts(), 0.0, True)
            proxy.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    async def reserve(
        self, table: RoutingTable, limits: tuple[Limit, ...], ex: Exchange, key: str | None
    ) -> Reservation | None:
        """The session's request, and one token and one micro-dollar held while it opens: a
        full token limit or budget refuses it; what it spends is counted as it goes."""
        key_id = hash_key(key, table.key_secret).hex()[:16] if key else ""
        who = Who(table.gateway, ex.consumer or "", key_id, ex.rule or "", ex.model or "")
        try:
            reservation, _ = await self.proxy.limiter(table).reserve(limits, who, Estimate(1, 0))
        except RateLimited:
            self.proxy.runtime.metrics.ratelimited.labels(table.gateway, ex.rule or "").inc()
            raise
        return reservation

    async def open(
        self,
        table: RoutingTable,
        rule: CompiledRule,
        consumer: ConsumerEntry,
        offer: Offer,
        ex: Exchange,
    ) -> tuple[ClientConnection, Step]:
        """The upstream socket: the rule's pick, then its fallbacks, as for any request."""
        http = self.proxy.runtime.http
        failure: Failure | None = None
        for step in rule.plan(table.rng):
            service = step.service
            model = step.model or offer.model or ""
            now = time.monotonic()
            target = service.pool.pick(now, service.pool.key(consumer.name, []))
            if target is None:
                failure = Failure("unavailable", service, detail=service.pool.why_unavailable(now))
            else:
                request = handshake(service, target.url, model)
                if offer.beta is not None:
                    request.headers["OpenAI-Beta"] = offer.beta
                signer = service.signer
                try:
                    if signer is not None:
                        if signer.needs_prepare:
                            await signer.prepare(http)
                        signer.sign(request)
                    ex.attempts += 1
                    upstream = await connect(
                        socket_url(request),
                        additional_headers=request.headers,
                        ssl=(service.tls or True) if request.url.startswith("https") else None,
                        open_timeout=service.timeouts.first_byte_limit,
                        max_size=_MAX_FRAME,
                        compression=None,
                        user_agent_header=None,
                    )
                except TransportError as exc:
                    failure = Failure(exc.kind, service, detail=str(exc))
                except InvalidStatus as exc:
                    failure = _refused(exc, service, request)
                except (InvalidHandshake, OSError, TimeoutError) as exc:
                    kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
                    failure = Failure(kind, service, detail=_why(exc))
                else:
                    target.health.succeeded()
                    ex.service, ex.provider = service.name, service.provider
                    ex.upstream_model = model
                    return upstream, step
                target.health.failed(failure.kind, failure.status, time.monotonic())
            if not rule.fallback_on.matches(failure.kind, failure.status, failure.code):
                break
        assert failure is not None
        ex.service, ex.provider = failure.service.name, failure.service.provider
        raise failure.error()


def _why(exc: BaseException) -> str:
    """A fixed phrase per failure (an exception's text may hold the URL)."""
    if isinstance(exc, TimeoutError):
        return "the realtime handshake did not finish in time"
    if isinstance(exc, InvalidHandshake):
        return "the upstream refused the WebSocket handshake"
    return "the connection could not be opened"


def _refused(exc: InvalidStatus, service: Any, request: Any) -> Failure:
    response = exc.response
    status = response.status_code
    cause = None
    if status < 500 and status not in (401, 403) and service.adapter is not None:
        headers = {k.lower(): v for k, v in response.headers.raw_items()}
        cause = service.adapter.error(status, headers, response.body or b"")
        if service.signer is not None:
            redact_error(cause, service.signer.secrets(request))
    return Failure("status", service, status, cause=cause)


async def _refuse(scope: Scope, send: Send, error: GatewayError, out: Headers) -> None:
    """An HTTP answer in the usual error shape, before the upgrade (or a close, for a server
    that cannot answer a WebSocket handshake with one)."""
    extensions = scope.get("extensions") or {}
    if "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1008, "reason": error.message[:120]})
        return
    body = error.body("openai")
    headers = [*out, (b"content-type", b"application/json")]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    await send(
        {"type": "websocket.http.response.start", "status": error.http_status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body})


class Session:
    """One open session: two relays, and what ends them."""

    def __init__(
        self,
        realtime: Realtime,
        table: RoutingTable,
        consumer: ConsumerEntry,
        rule: CompiledRule,
        ex: Exchange,
        upstream: ClientConnection,
        receive: Receive,
        send: Send,
    ) -> None:
        self.realtime = realtime
        self.table = table
        self.consumer = consumer
        self.rule = rule
        self.ex = ex
        self.upstream = upstream
        self.receive = receive
        self.send = send
        self.usage = TokenCounts()
        self.cost = 0.0
        self.closed_by_us: tuple[int, str] | None = None
        self._charging: set[asyncio.Task[None]] = set()

    async def run(self, longest: float) -> None:
        client = asyncio.ensure_future(self.from_client())
        provider = asyncio.ensure_future(self.from_upstream())
        try:
            done, _ = await asyncio.wait(
                {client, provider}, timeout=longest, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                await self.close_client(1000, "the session reached its longest time")
        finally:
            for task in (client, provider):
                task.cancel()
            for task in (client, provider):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self.upstream.close()
            if self._charging:
                await asyncio.gather(*self._charging, return_exceptions=True)
            ex = self.ex
            ex.ended = time.perf_counter()
            if self.usage.input or self.usage.output:
                ex.usage, ex.cost = self.usage, self.cost

    async def from_client(self) -> None:
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                await self.upstream.close()
                return
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            try:
                await self.upstream.send(text if text is not None else message.get("bytes") or b"")
            except ConnectionClosed:
                return  # the other relay tells the client

    async def from_upstream(self) -> None:
        try:
            async for frame in self.upstream:
                if isinstance(frame, str):
                    await self.send({"type": "websocket.send", "text": frame})
                    if _DONE in frame.encode():
                        self.done(frame)
                else:
                    await self.send({"type": "websocket.send", "bytes": frame})
        except ConnectionClosed:
            pass
        received = self.upstream.protocol.close_rcvd
        if received is None:
            self.ex.error_type = "upstream_error"
            await self.close_client(1011, "the upstream connection was lost")
        else:
            code = received.code if received.code in _SENDABLE else 1011
            await self.close_client(code, received.reason or "the upstream closed the session")

    async def close_client(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    def done(self, frame: str) -> None:
        """A ``response.done`` event: its usage, priced, and counted against the limits."""
        try:
            event = orjson.loads(frame)
            usage = event["response"]["usage"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if event.get("type") != "response.done" or not isinstance(usage, dict):
            return
        details = usage.get("input_token_details") or {}
        counts = TokenCounts(
            _int(usage.get("input_tokens")),
            _int(usage.get("output_tokens")),
            _int(details.get("cached_tokens") if isinstance(details, dict) else 0),
        )
        cost = self.table.prices.cost(self.ex.upstream_model or self.ex.model, counts) or 0.0
        self.usage.input += counts.input
        self.usage.output += counts.output
        self.usage.cached += counts.cached
        self.cost += cost
        task = asyncio.ensure_future(self.charge(counts, cost))
        self._charging.add(task)
        task.add_done_callback(self._charging.discard)

    async def charge(self, counts: TokenCounts, cost: float) -> None:
        table, consumer = self.table, self.consumer
        limits = counting((*table.limits, *self.rule.limits, *consumer.limits), requests=False)
        if not limits:
            return
        limiter = self.realtime.proxy.limiter(table)
        who = Who(table.gateway, consumer.name, "", self.rule.name, self.ex.model or "")
        try:
            reservation, _ = await limiter.reserve(limits, who, Estimate(1, 0))
        except RateLimited as exc:
            # Full already: this session goes no further.
            await self.close_client(1008, exc.message)
            with contextlib.suppress(Exception):
                await self.upstream.close(1000, "the client's limit is reached")
            return
        await limiter.settle(reservation, counts, cost, True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
