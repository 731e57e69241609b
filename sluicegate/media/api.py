"""The data plane's media endpoints (``media.base.ENDPOINTS``): images, audio, rerank and
moderations, each routed by its ``model`` through the rules as chat is.

A request is authenticated, matched to a rule (allow lists included), counted against the
request limits and budgets of the gateway, its rule and its consumer, then tried on the
rule's plan: its weighted pick, retries and fallbacks. A step whose provider does not serve
the endpoint is passed over. A form (an upload) is streamed to the provider as it arrives,
so it can be tried again only while none of it was sent (a refused connection, say).

Answers in OpenAI's shape from OpenAI, Azure and compatible servers are relayed: a JSON
answer whole, audio and event streams as they come. Other providers' answers are read
whole and translated (``Wire.answer``). The units used (images, seconds, characters,
searches) are priced (``media.prices``) into the audit row, metrics and budgets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.asgi import (
    NOSNIFF,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    respond,
    respond_error,
)
from sluicegate.credentials.redact import redact_error
from sluicegate.errors import GatewayError, InvalidRequest, TransportError
from sluicegate.media import usage
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.request import MediaRequest, read_request
from sluicegate.media.usage import MediaUnits, TranscriptEvents
from sluicegate.media.wires import wire_for
from sluicegate.policies.rate_limit import Reservation
from sluicegate.proxy.attempt import Failure
from sluicegate.proxy.handler import read_headers
from sluicegate.proxy.upstream import HttpTransport, UpstreamResponse
from sluicegate.routing.balancer import Target
from sluicegate.routing.table import CompiledRule, CompiledService, RoutingTable, Step
from sluicegate.telemetry.attempts import Tried, outcome
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from sluicegate.proxy.handler import Proxy

_MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Answer:
    """A provider's answer that may go to the client: whole (``body``), or a stream
    (``response``) whose bytes are relayed as they come."""

    target: Target
    status: int
    content_type: str
    body: bytes | None = None
    document: Any = None  # the whole answer, parsed (for its units)
    response: UpstreamResponse | None = None


def _unsupported(service: CompiledService, endpoint: MediaEndpoint) -> InvalidRequest:
    return InvalidRequest(
        f"Service '{service.name}' (provider '{service.provider}') does not serve "
        f"/v1{endpoint.path}.",
        param="model",
        code="unsupported_endpoint",
    )


def _pause(service: CompiledService, retry: int, failure: Failure) -> float | None:
    base, largest = service.backoff
    if failure.retry_after is not None:
        return failure.retry_after if failure.retry_after <= largest else None
    return random.uniform(0, min(largest, base * 2 ** (retry - 1)))


class MediaApi:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: RoutingTable,
        endpoint: MediaEndpoint,
    ) -> None:
        proxy = self.proxy
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, endpoint.name, "openai")
        tracing = proxy.tracing
        span = tracing.request_span(headers, endpoint.name) if tracing is not None else None
        inflight = proxy.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        reservation: Reservation | None = None
        request: MediaRequest | None = None
        started: list[bool] = []  # an answer began: errors can no longer be sent

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(True)
            await send(message)

        try:
            consumer = await proxy.identify(table, incoming.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            request = await read_request(receive, headers, incoming.content_length, table, endpoint)
            rule = proxy.match(table, consumer, request.model, scope, headers)
            ex.rule, ex.model = rule.name, request.model
            ex.stream = request.stream
            # Media is counted in requests and spend: its tokens, where a provider reports
            # any, are not a prompt the token limits could estimate before the call.
            limits = tuple(
                dataclasses.replace(limit, tokens=None)
                for limit in (*table.limits, *rule.limits, *consumer.limits)
                if limit.requests is not None or limit.usd is not None
            )
            if limits:
                reservation = await proxy.reserve(table, limits, ex, incoming.key, {}, out)
            await self.forward(table, rule, request, consumer.name, tracked, out, ex)
        except GatewayError as exc:
            error = exc
            if request is not None and request.upload is not None and request.upload.error:
                error = request.upload.error  # the client's fault (too large, too slow, gone)
            ex.status, ex.error_type = error.http_status, error.client_type
            if not started:
                await respond_error(send, error, out)
        finally:
            inflight.dec()
            if request is not None and request.rest is not None:
                await request.rest.aclose()
            if reservation is not None:
                answered = 200 <= ex.status < 300
                await proxy.limiter(table).settle(reservation, None, ex.cost or 0.0, answered)
            proxy.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    async def forward(
        self,
        table: RoutingTable,
        rule: CompiledRule,
        request: MediaRequest,
        consumer: str,
        send: Send,
        out: Headers,
        ex: Exchange,
    ) -> None:
        """Try the rule's plan until a step answers; relay the answer and price it."""
        endpoint = request.endpoint
        attempts = 0
        failure: Failure | None = None
        steps = rule.plan(table.rng, consumer if rule.hash_on == "consumer" else None)
        for index, step in enumerate(steps):
            service = step.service
            # The in-process mock (a transport of its own) answers chat only.
            wire = wire_for(service.adapter, endpoint) if service.transport is None else None
            if wire is None or (endpoint.form and not wire.relayed):
                failure = Failure("unsupported", service, cause=_unsupported(service, endpoint))
                ex.tried.append(Tried(service.name, None, "unsupported"))
                continue
            for retry in range(service.retries + 1):
                if request.sent:
                    break  # the upload went (in part) to a provider: it cannot be sent again
                if retry and failure is not None:
                    delay = _pause(service, retry, failure)
                    if delay is None:
                        break
                    await asyncio.sleep(delay)
                now = time.monotonic()
                target = service.pool.pick(now, None)
                if target is None:
                    why = service.pool.why_unavailable(now)
                    failure = Failure("unavailable", service, detail=why)
                    ex.tried.append(Tried(service.name, None, "unavailable"))
                    break
                attempts += 1
                target.health.begin(now)
                target.inflight += 1
                try:
                    result = await self.attempt(step, wire, request, target)
                finally:
                    target.inflight -= 1
                    spent = time.monotonic() - now
                    ex.upstream_seconds += spent
                kind = result.kind if isinstance(result, Failure) else "status"
                ex.tried.append(
                    Tried(
                        service.name, target.url, outcome(kind, result.status), result.status, spent
                    )
                )
                if isinstance(result, Failure):
                    failure = result
                    target.health.failed(result.kind, result.status, time.monotonic())
                    if not result.retryable():
                        break
                    continue
                target.health.succeeded()
                ex.attempts, ex.fallbacks = attempts, index
                ex.service, ex.provider = service.name, service.provider
                ex.upstream_model = step.model or request.model
                out.append((b"x-sluicegate-service", service.name.encode()))
                out.append((b"x-sluicegate-attempts", str(attempts).encode()))
                await self.deliver(table, request, result, send, out, ex)
                return
            assert failure is not None
            if request.sent or not rule.fallback_on.matches(
                failure.kind, failure.status, failure.code
            ):
                break
        assert failure is not None
        ex.attempts, ex.service, ex.provider = (
            attempts,
            failure.service.name,
            failure.service.provider,
        )
        out.append((b"x-sluicegate-service", failure.service.name.encode()))
        out.append((b"x-sluicegate-attempts", str(attempts).encode()))
        raise failure.error()

    async def attempt(
        self, step: Step, wire: Wire, request: MediaRequest, target: Target
    ) -> Answer | Failure:
        service = step.service
        adapter = service.adapter
        assert adapter is not None
        endpoint = request.endpoint
        model = step.model or request.model
        base = target.url + service.path
        try:
            upstream = wire.request(adapter, endpoint, request.body, request.raw, model, base)
        except GatewayError as exc:  # the request cannot be put in this provider's terms
            return Failure("status", service, exc.http_status, cause=exc)
        for name, value in service.headers:
            upstream.headers[name] = value
        http = self.proxy.runtime.http
        signer = service.signer
        if signer is not None:
            if signer.needs_prepare:
                try:
                    await signer.prepare(http)
                except TransportError as exc:
                    detail = (
                        str(exc) if exc.kind == "auth" else f"could not obtain credentials: {exc}"
                    )
                    return Failure(exc.kind, service, detail=detail)
            signer.sign(upstream)
        transport = service.transport or http
        started = time.monotonic()
        try:
            if endpoint.form:
                assert isinstance(transport, HttpTransport)
                sent = [*upstream.headers.items(), ("content-type", request.content_type)]
                length = request.form_length(model)
                if length is not None:
                    sent.append(("content-length", str(length)))
                response: UpstreamResponse = await transport.open_native(
                    upstream, sent, request.form_bytes(model), service.timeouts, service.tls
                )
            else:
                response = await transport.open(upstream, service.timeouts, tls=service.tls)
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        if response.status >= 400:
            return await self._failed(response, service, upstream)
        content_type = response.headers.get("content-type", "application/json")
        if wire.relayed and not content_type.startswith("application/json"):
            # Audio, an event stream, text: relayed as it comes.
            target.observe(time.monotonic() - started, time.monotonic())
            return Answer(target, response.status, content_type, response=response)
        try:
            data = await response.read(service.max_answer_bytes)
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        target.observe(time.monotonic() - started, time.monotonic())
        try:
            if wire.relayed:
                return Answer(target, response.status, content_type, data, orjson.loads(data))
            document = wire.answer(endpoint, data, request.body, model)
        except GatewayError as exc:
            return Failure("status", service, exc.http_status, cause=exc)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            return Failure("invalid", service, detail=type(exc).__name__)
        return Answer(target, 200, "application/json", orjson.dumps(document), document)

    @staticmethod
    async def _failed(
        response: UpstreamResponse, service: CompiledService, upstream: Any
    ) -> Failure:
        try:
            body = (await response.read())[:_MAX_ERROR_BODY]
        except TransportError:
            body = b""
        status = response.status
        headers = {k.lower(): v for k, v in response.headers.items()}
        cause = None
        if status < 500 and status not in (401, 403) and service.adapter is not None:
            cause = service.adapter.error(status, headers, body)
            if service.signer is not None:
                redact_error(cause, service.signer.secrets(upstream))
        retry_after: float | None = None
        value = headers.get("retry-after")
        if value is not None:
            try:
                retry_after = max(float(value), 0.0)
            except ValueError:
                retry_after = None
        return Failure("status", service, status, cause=cause, retry_after=retry_after)

    async def deliver(
        self,
        table: RoutingTable,
        request: MediaRequest,
        answer: Answer,
        send: Send,
        out: Headers,
        ex: Exchange,
    ) -> None:
        ex.status = answer.status
        family = request.endpoint.family
        units = usage.from_request(family, request.body)
        if answer.body is not None:
            if isinstance(answer.document, dict):
                found = usage.from_answer(family, request.body, answer.document)
                units.images, units.tokens = found.images, found.tokens
                units.seconds, units.searches = found.seconds, found.searches
            out.append((b"content-type", answer.content_type.encode("latin-1")))
            await respond(send, answer.status, answer.body, out)
            ex.first_token = time.perf_counter() - ex.started
        else:
            await self._relay(answer, send, out, ex, units)
        ex.ended = time.perf_counter()
        self._price(table, request, units, ex)

    @staticmethod
    async def _relay(
        answer: Answer, send: Send, out: Headers, ex: Exchange, units: MediaUnits
    ) -> None:
        response = answer.response
        assert response is not None
        events = (
            TranscriptEvents(units) if answer.content_type.startswith("text/event-stream") else None
        )
        head = [(b"content-type", answer.content_type.encode("latin-1")), *out]
        await send({"type": "http.response.start", "status": answer.status, "headers": head})
        try:
            async for chunk in response.chunks():
                if ex.first_token is None:
                    ex.first_token = time.perf_counter() - ex.started
                if events is not None:
                    events.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TransportError:
            ex.error_type = "upstream_error"
            return  # cut short: the connection closes without an end, never a silent truncation
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _price(table: RoutingTable, request: MediaRequest, units: MediaUnits, ex: Exchange) -> None:
        ex.usage = units.tokens
        model = ex.upstream_model or request.model
        ex.cost = usage.cost(table.media_prices, table.prices, model, units, request.body)
