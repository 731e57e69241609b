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
from sluicegate.errors import GatewayError, InvalidRequest, TransportError
from sluicegate.media import usage
from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.multipart import FormFile
from sluicegate.media.request import MediaRequest, read_request
from sluicegate.media.usage import MediaUnits, StreamEvents
from sluicegate.media.wires import wire_for
from sluicegate.policies.rate_limit import Reservation, counting
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.attempt import Failure, failed_answer
from sluicegate.proxy.byte_relay import relay_bytes
from sluicegate.proxy.handler import read_headers
from sluicegate.proxy.retry import backoff
from sluicegate.proxy.routing import learn
from sluicegate.proxy.upstream import HttpTransport, UpstreamResponse
from sluicegate.routing.balancer import Target
from sluicegate.routing.table import CompiledRule, CompiledService, RoutingTable, Step
from sluicegate.telemetry import events
from sluicegate.telemetry.attempts import Tried, outcome
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from sluicegate.proxy.handler import Proxy


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
    longest: float = 0.0  # a stream's longest time, the service's stream_timeout


def _unsupported(service: CompiledService, endpoint: MediaEndpoint) -> InvalidRequest:
    return InvalidRequest(
        f"Service '{service.name}' (provider '{service.provider}') does not serve "
        f"/v1{endpoint.path}.",
        param="model",
        code="unsupported_endpoint",
    )


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
            rule = proxy.match(table, consumer, request.model, scope, headers, ex.request_id)
            ex.rule, ex.model = rule.name, request.model
            ex.stream = request.stream
            # Media is counted in requests and spend: its tokens, where a provider reports
            # any, are not a prompt the token limits could estimate before the call.
            limits = counting((*table.limits, *rule.limits, *consumer.limits), tokens=False)
            if limits:
                reservation = await proxy.reserve(table, limits, ex, incoming.key, {}, out)
            if rule.guard is not None:  # the text the client sends, as for chat
                ex.screen = rule.guard.begin("openai", endpoint.name)
                if ex.screen.strings(request.body) and not endpoint.form:
                    request.raw = orjson.dumps(request.body)
            # The rule's strategy and routes decide as for chat (docs/routing.md).
            steps = await proxy.route(
                table, rule, request.body, request.model, headers, consumer, reservation, out, ex
            )
            await self.forward(table, rule, steps, request, tracked, receive, out, ex)
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
        steps: list[Step],
        request: MediaRequest,
        send: Send,
        receive: Receive,
        out: Headers,
        ex: Exchange,
    ) -> None:
        """Try the rule's plan until a step answers; relay the answer and price it."""
        endpoint = request.endpoint
        attempts = 0
        failure: Failure | None = None
        for index, step in enumerate(steps):
            service = step.service
            # The in-process mock (a transport of its own) answers chat only.
            wire = wire_for(service.adapter, endpoint) if service.transport is None else None
            if wire is None:
                failure = Failure("unsupported", service, cause=_unsupported(service, endpoint))
                ex.tried.append(Tried(service.name, None, "unsupported"))
                continue
            for retry in range(service.retries + 1):
                if request.sent:
                    break  # the upload went (in part) to a provider: it cannot be sent again
                if retry and failure is not None:
                    delay = backoff(service, retry, failure)
                    if delay is None:
                        events.not_retried(ex.request_id, service.name, failure.retry_after)
                        break
                    events.retrying(ex.request_id, service.name, retry, service.retries, delay)
                    await asyncio.sleep(delay)
                now = time.monotonic()
                target = service.pool.pick(now, None)
                if target is None:
                    why = service.pool.why_unavailable(now)
                    failure = Failure("unavailable", service, detail=why)
                    ex.tried.append(Tried(service.name, None, "unavailable"))
                    events.skipped(ex.request_id, service.name, why)
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
                failed = result if isinstance(result, Failure) else None
                learn(self.proxy.runtime.route_stats, table, rule, step, spent, failed)
                kind = result.kind if isinstance(result, Failure) else "status"
                ex.tried.append(
                    Tried(
                        service.name, target.url, outcome(kind, result.status), result.status, spent
                    )
                )
                if isinstance(result, Failure):
                    failure = result
                    if request.upload is not None and request.upload.error is not None:
                        # The client's fault (too large, too slow, gone): not the provider's
                        # health, and nothing to retry.
                        raise request.upload.error
                    target.health.failed(result.kind, result.status, time.monotonic())
                    events.attempt_failed(
                        ex.request_id,
                        attempts,
                        service.name,
                        target.url,
                        result.kind,
                        result.status,
                        result.describe(),
                    )
                    if not result.retryable():
                        break
                    continue
                target.health.succeeded()
                ex.attempts, ex.fallbacks = attempts, index
                ex.service, ex.provider = service.name, service.provider
                ex.upstream_model = step.model or request.model
                out.append((b"x-sluicegate-service", service.name.encode()))
                out.append((b"x-sluicegate-attempts", str(attempts).encode()))
                await self.deliver(table, request, result, send, receive, out, ex)
                return
            assert failure is not None
            # A provider that cannot take what was asked (a mask) is passed over, as one
            # that lacks the endpoint is: the next step may take it.
            passed_over = failure.code == "unsupported_parameter"
            if request.sent or not (
                passed_over or rule.fallback_on.matches(failure.kind, failure.status, failure.code)
            ):
                break
            if index + 1 < len(steps):
                following = steps[index + 1].service.name
                events.falling_back(ex.request_id, rule.name, service.name, following)
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
        signer = service.signer
        # A form streams on, unless its files go inside JSON, or a signature covers its bytes.
        streamed = endpoint.form and wire.relayed and not (signer and signer.signs_body)
        try:
            files: tuple[FormFile, ...] = ()
            if endpoint.form and not wire.relayed:
                files = tuple((await request.read_whole()).uploads)
                # Uploads put in JSON (base64, a mask redrawn): work for a thread.
                upstream = await asyncio.to_thread(
                    wire.request, adapter, endpoint, request.body, request.raw, model, base, files
                )
            else:
                upstream = wire.request(
                    adapter, endpoint, request.body, request.raw, model, base, files
                )
            if endpoint.form and wire.relayed and not streamed:
                await request.read_whole()
                upstream.body = request.form_head(model) + (request.tail or b"")
                upstream.headers["content-type"] = request.content_type
        except GatewayError as exc:  # the request cannot be put in this provider's terms
            if exc.code == "unsupported_parameter":
                exc.message = f"Service '{service.name}': {exc.message}"
            return Failure("status", service, exc.http_status, cause=exc)
        for name, value in service.headers:
            upstream.headers[name] = value
        http = self.proxy.runtime.http
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
        copies = 1 if wire.relayed else wire.copies(endpoint, request.body, model)
        if copies > 1:
            return await self.several(step, wire, request, target, upstream, copies)
        started = time.monotonic()
        try:
            if streamed:
                assert isinstance(transport, HttpTransport)
                sent = [*upstream.headers.items(), ("content-type", request.content_type)]
                head = request.form_head(model)
                length = request.form_length(head)
                if length is not None:
                    sent.append(("content-length", str(length)))
                response: UpstreamResponse = await transport.open_native(
                    upstream, sent, request.form_bytes(head), service.timeouts, service.tls
                )
            else:
                response = await transport.open(upstream, service.timeouts, tls=service.tls)
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        if response.status >= 400:
            secrets = service.signer.secrets(upstream) if service.signer is not None else []
            return await failed_answer(response, service, secrets)
        content_type = response.headers.get("content-type", "application/json")
        if wire.relayed and not content_type.startswith("application/json"):
            # Audio, an event stream, text: relayed as it comes.
            target.observe(time.monotonic() - started, time.monotonic())
            longest = service.timeouts.stream
            return Answer(target, response.status, content_type, response=response, longest=longest)
        if wire.relayed:
            try:
                data = await response.read(service.max_answer_bytes)
                target.observe(time.monotonic() - started, time.monotonic())
                return Answer(target, response.status, content_type, data, orjson.loads(data))
            except TransportError as exc:
                return Failure(exc.kind, service, detail=str(exc))
            except ValueError as exc:
                return Failure("invalid", service, detail=type(exc).__name__)
        document = await self.translated(service, wire, request, model, response)
        if isinstance(document, Failure):
            return document
        target.observe(time.monotonic() - started, time.monotonic())
        return Answer(target, 200, "application/json", orjson.dumps(document), document)

    async def several(
        self,
        step: Step,
        wire: Wire,
        request: MediaRequest,
        target: Target,
        upstream: UpstreamRequest,
        copies: int,
    ) -> Answer | Failure:
        """``upstream`` sent ``copies`` times at once; any failure is the attempt's."""
        service = step.service
        model = step.model or request.model
        transport = service.transport or self.proxy.runtime.http
        started = time.monotonic()

        async def one() -> dict[str, Any] | Failure:
            try:
                response = await transport.open(upstream, service.timeouts, tls=service.tls)
            except TransportError as exc:
                return Failure(exc.kind, service, detail=str(exc))
            if response.status >= 400:
                secrets = service.signer.secrets(upstream) if service.signer is not None else []
                return await failed_answer(response, service, secrets)
            return await self.translated(service, wire, request, model, response)

        answers = await asyncio.gather(*(one() for _ in range(copies)))
        failed = next((a for a in answers if isinstance(a, Failure)), None)
        if failed is not None:
            return failed
        target.observe(time.monotonic() - started, time.monotonic())
        document = wire.join([a for a in answers if not isinstance(a, Failure)])
        return Answer(target, 200, "application/json", orjson.dumps(document), document)

    @staticmethod
    async def translated(
        service: CompiledService,
        wire: Wire,
        request: MediaRequest,
        model: str,
        response: UpstreamResponse,
    ) -> dict[str, Any] | Failure:
        """A provider's whole answer in OpenAI's shape (``Wire.answer``)."""
        try:
            data = await response.read(service.max_answer_bytes)
            return wire.answer(request.endpoint, data, request.body, model)
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        except GatewayError as exc:
            return Failure("status", service, exc.http_status, cause=exc)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            return Failure("invalid", service, detail=type(exc).__name__)

    async def deliver(
        self,
        table: RoutingTable,
        request: MediaRequest,
        answer: Answer,
        send: Send,
        receive: Receive,
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
            assert answer.response is not None
            streamed = answer.content_type.startswith("text/event-stream")
            events = StreamEvents(units) if streamed else None
            await relay_bytes(
                answer.response,
                send,
                [(b"content-type", answer.content_type.encode("latin-1")), *out],
                receive,
                ex,
                answer.longest,
                self.proxy.drain.over,
                events.feed if events is not None else None,
            )
        ex.ended = time.perf_counter()
        self._price(table, request, units, ex)

    @staticmethod
    def _price(table: RoutingTable, request: MediaRequest, units: MediaUnits, ex: Exchange) -> None:
        ex.usage = units.tokens
        model = ex.upstream_model or request.model
        ex.cost = usage.cost(table.media_prices, table.prices, model, units, request.body)
