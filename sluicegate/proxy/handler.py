"""The one request path: authenticate, match, plan, attempt, relay.

Everything a request needs comes from the routing table it started with;
nothing here reads config, touches a database or builds a model of the body.
The body is parsed once; the provider request is built per attempt, so a
retry never sees an edit twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from sluicegate.auth.tokens import looks_like_jwt
from sluicegate.cache.answers import Capture, replay_body, replay_stream
from sluicegate.cache.keys import Scope as CacheScope
from sluicegate.cache.policy import CachePlan
from sluicegate.cache.store import MAX_ANSWER_BYTES, Caches, Lookup, read_control
from sluicegate.dialects.anthropic import estimate_tokens
from sluicegate.dialects.base import Dialect
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.dialects.responses_items import refused_tools
from sluicegate.drain import Drain
from sluicegate.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoAbleTarget,
    PermissionDenied,
    RateLimited,
)
from sluicegate.policies.rate_limit import (
    Limit,
    RateLimiter,
    Reservation,
    Who,
    counting,
)
from sluicegate.policies.shared_counters import SharedFileCounters
from sluicegate.policies.tokens import approximate
from sluicegate.policies.windows import Counters, RedisCounters
from sluicegate.proxy.attempt import Call, Failure, Success, attempt
from sluicegate.proxy.retry import backoff, sticky_key
from sluicegate.proxy.routing import embedder, facts_of, learn, plan
from sluicegate.proxy.streaming import STREAM_HEADERS, relay_stream
from sluicegate.routing.semantic import Embed
from sluicegate.routing.smart import header_value
from sluicegate.routing.table import (
    CompiledRule,
    CompiledService,
    ConsumerEntry,
    RoutingTable,
    Step,
    hash_key,
)
from sluicegate.telemetry import events
from sluicegate.telemetry.attempts import Tried, outcome
from sluicegate.telemetry.bodies import Bodies
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.ids import ordered_id
from sluicegate.telemetry.recorder import Recorder
from sluicegate.telemetry.tracing import Tracing
from sluicegate.telemetry.usage import TokenCounts, counted_usage, text_markers, text_size
from sluicegate.tls.identity import CLIENT_CERT, ClientCert

if TYPE_CHECKING:
    from sluicegate.runtime import Runtime


@dataclass(slots=True)
class Incoming:
    """What the gateway reads from the client's headers, in one pass."""

    request_id: str
    key: str | None
    content_length: int | None


def read_headers(headers: list[tuple[bytes, bytes]]) -> Incoming:
    rid: str | None = None
    key: str | None = None
    length: int | None = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else value.decode("latin-1")
        elif name == b"x-api-key":
            if key is None:
                key = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"x-request-id" and 0 < len(value) <= 200:
            rid = value.decode("latin-1")
    return Incoming(rid or ordered_id(), key, length)


def bearer_jwt(table: RoutingTable, key: str | None) -> str | None:
    """``key`` when it is a JWT for ``auth.jwt`` to verify; None for an API key."""
    if table.jwt is None or key is None or not looks_like_jwt(key):
        return None
    return key


_CHAT_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


# Reads what a dialect needs before parsing (``Proxy.handle``): the endpoint, or None.
Prepare = Callable[[ConsumerEntry, bytes], Awaitable[str | None]]


def _unsupported(service: CompiledService, call: Call) -> InvalidRequest:
    if call.endpoint == "responses":  # only built-in tools make a request need it
        return refused_tools(service.name, service.provider, call.parsed.native)
    path = f"/v1/{call.endpoint}"
    if call.endpoint == "chat":
        path = _CHAT_PATHS.get(call.dialect.name, path)
    return InvalidRequest(
        f"Service '{service.name}' (provider '{service.provider}') does not serve {path}.",
        param="model",
        code="unsupported_endpoint",
    )


def _failure(result: Success | Failure) -> Failure | None:
    return result if isinstance(result, Failure) else None


def _forwarded(dialect: Dialect, headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Client headers that a provider of the client's own dialect should see."""
    if not dialect.forward_headers:
        return {}
    return {
        k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in dialect.forward_headers
    }


class Proxy:
    """Serves the OpenAI-dialect endpoints for one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.recorder = Recorder(runtime.metrics)
        self._limiter: RateLimiter | None = None
        telemetry = runtime.loaded.config.telemetry
        self.tracing = Tracing.from_config(telemetry.otlp_endpoint, telemetry.service_name)
        # Cache entries outlive routing tables: a config change keeps them.
        self.caches = Caches(runtime.loaded.config.gateway.cache_max_bytes)
        self._openai = OpenAIDialect()  # the dialect of the cache's embeddings requests
        runtime.metrics.cache_memory.set_function(lambda: self.caches.lru.bytes)
        self.drain = Drain(runtime.loaded.config.gateway.drain_timeout)  # read at start

    def limiter(self, table: RoutingTable) -> RateLimiter:
        # Made on first use, inside the event loop the Redis client belongs to.
        if self._limiter is None:
            counters: Counters | None = None
            if table.redis:
                counters = RedisCounters(table.redis)
            elif self.runtime.shared_counters:  # several workers: one count for them all
                counters = SharedFileCounters(self.runtime.shared_counters)
            gauge = self.runtime.metrics.limits_backend_up.labels(table.gateway)
            gauge.set(1)
            self._limiter = RateLimiter(
                counters, table.redis_failure, lambda up: gauge.set(int(up))
            )
        return self._limiter

    async def close(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()
        if self._limiter is not None:
            await self._limiter.close()
            self._limiter = None
        await self.caches.close()

    def authenticate(self, table: RoutingTable, key: str | None) -> ConsumerEntry:
        consumer = table.authenticate(key)
        if consumer is None:
            if key is None:
                raise AuthenticationError(
                    "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                    code="missing_api_key",
                )
            if table.revoked and hash_key(key, table.key_secret) in table.revoked:
                raise AuthenticationError("This API key has been revoked.", code="key_revoked")
            raise AuthenticationError("Invalid API key.")
        if consumer.key_id is not None:  # a minted key
            now = time.time()
            if consumer.expires is not None and now >= consumer.expires:
                raise AuthenticationError("This API key has expired.", code="key_expired")
            self.runtime.keys_used[consumer.key_id] = now  # flushed to the store in batches
        return consumer

    async def identify(self, table: RoutingTable, key: str | None, scope: Scope) -> ConsumerEntry:
        """The caller's consumer: from its key or JWT when it sent one, else from its verified
        client certificate (``mtls_subjects``), else the anonymous one or a 401."""
        token = bearer_jwt(table, key)
        if token is not None:
            return await self.authenticate_token(table, token)
        if key is None and table.certificates:
            cert: ClientCert | None = scope.get(CLIENT_CERT)
            if cert is not None:
                consumer = table.by_certificate(cert.names)
                if consumer is None:
                    raise AuthenticationError(
                        f"The client certificate ({cert.subject}) names no consumer of this "
                        "gateway, and no API key was sent.",
                        code="unknown_client_certificate",
                    )
                return consumer
        return self.authenticate(table, key)

    async def authenticate_token(self, table: RoutingTable, token: str) -> ConsumerEntry:
        """The consumer of a bearer JWT (``auth.jwt``): the one its consumer claim names,
        else ``default_consumer``'s rules and limits under the claim's own name; narrowed
        by the consumer groups its groups claim names."""
        assert table.jwt is not None
        identity = await table.jwt.verify(token)
        consumer = table.consumers.get(identity.consumer)
        if consumer is None:
            default = table.jwt.default_consumer
            fallback = table.consumers.get(default) if default is not None else None
            if fallback is None:
                raise AuthenticationError(
                    "The token is valid but names no consumer of this gateway.",
                    code="unknown_consumer",
                )
            # Limits keyed per consumer then count each token subject on its own.
            consumer = dataclasses.replace(fallback, name=identity.consumer)
        return table.in_groups(consumer, identity.groups) if identity.groups else consumer

    async def models(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: RoutingTable | None = None,
        model: str | None = None,
    ) -> None:
        """``GET /v1/models`` (``model`` None), or ``GET /v1/models/{model}``: a model the
        caller may use, a glob rule's match included, in OpenAI's shape."""
        incoming = read_headers(scope["headers"])
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        try:
            table = table or self.runtime.table
            consumer = await self.identify(table, incoming.key, scope)
            if model is not None and not self.may_ask(table, consumer, model):
                raise ModelNotFound(
                    f"The model '{model}' does not exist or is not served here.", param="model"
                )
        except GatewayError as exc:
            await respond_error(send, exc, out)
            return
        out.append(JSON)
        if model is None:
            await respond(send, 200, consumer.models_body, out)
            return
        one = {"id": model, "object": "model", "created": 0, "owned_by": "sluicegate"}
        await respond(send, 200, orjson.dumps(one), out)

    @staticmethod
    def may_ask(table: RoutingTable, consumer: ConsumerEntry, model: str) -> bool:
        if consumer.models is not None and model not in consumer.models:
            return False
        return any(consumer.may_use(rule) for rule in table.candidates(model))

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: str,
        dialect: Dialect,
        table: RoutingTable | None = None,
        prepare: Prepare | None = None,
        label: str | None = None,
    ) -> None:
        """Serve one request of ``dialect`` for ``endpoint``. ``prepare`` reads what the
        dialect needs before it parses the body (a stored conversation) and may name the
        endpoint the request needs instead; ``label`` is the endpoint that audit rows,
        metrics and traces name, when it is not ``endpoint``."""
        # The request finishes on the table it started with, whatever is swapped in meanwhile.
        table = table or self.runtime.table
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, label or endpoint, dialect.name)
        reservation: Reservation | None = None
        prompt: dict[str, Any] = {}  # the request, to count its prompt when no usage comes
        span = (
            self.tracing.request_span(headers, label or endpoint)
            if self.tracing is not None
            else None
        )
        inflight = self.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        try:
            consumer = await self.identify(table, incoming.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            raw = await read_body(
                receive, table.max_body_bytes, incoming.content_length, table.body_timeout
            )
            audit = self.recorder.audit
            if audit is not None and audit.log_bodies:  # otherwise no body outlives its answer
                ex.bodies = Bodies(raw, audit.max_body_bytes)
            if prepare is not None:
                endpoint = await prepare(consumer, raw) or endpoint
            parsed = dialect.parse(endpoint, raw)
            prompt = parsed.canonical
            rule = self.match(table, consumer, parsed.model, scope, headers, incoming.request_id)
            ex.rule, ex.model = rule.name, parsed.model
            if audit is not None and rule.policies.log_bodies is not None:  # the rule decides
                ex.bodies = Bodies(raw, audit.max_body_bytes) if rule.policies.log_bodies else None
            stream = parsed.canonical.get("stream") is True
            ex.stream = stream
            limits = (*table.limits, *rule.limits, *consumer.limits)
            if limits:
                reservation = await self.reserve(
                    table, limits, ex, incoming.key, parsed.canonical, out
                )
            if rule.guard is not None:  # guardrails(in) and transforms, before the cache key
                ex.screen = rule.guard.begin(dialect.name, endpoint)
                parsed, raw = ex.screen.request(dialect, parsed, raw, headers, self.prompt_tokens)
            forwarded = _forwarded(dialect, headers)
            call = Call(dialect, endpoint, parsed, raw, stream, forwarded, consumer.name, headers)
            call.screen = ex.screen
            if span is not None and self.tracing is not None:
                call.trace = (self.tracing, span)
            call.receive = receive  # a stream stops when its client leaves
            steps = await self.route(
                table,
                rule,
                call.parsed.canonical,
                call.parsed.model,
                call.headers,
                consumer,
                reservation,
                out,
                ex,
            )
            if rule.cache is None:
                await self.forward(table, rule, call, send, out, ex, steps)
            else:
                await self.forward_cached(table, rule, rule.cache, call, send, out, ex, steps)
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            await respond_error(send, exc, out, dialect.name)
            if ex.bodies is not None:
                ex.bodies.response = exc.body(dialect.name)
        finally:
            inflight.dec()
            if ex.usage is None and ex.text_size is not None:  # none reported: counted, marked
                ex.usage = (
                    reservation.counted_usage(ex.text_size)
                    if reservation is not None
                    else counted_usage(self.prompt_tokens(prompt), ex.text_size)
                )
            if reservation is not None and ex.cache == "hit":  # nothing spent upstream
                await self.limiter(table).settle(reservation, TokenCounts(), 0.0, True)
            elif reservation is not None:
                ex.cost = table.prices.cost(ex.upstream_model or ex.model, ex.usage)
                answered = 200 <= ex.status < 300
                await self.limiter(table).settle(reservation, ex.usage, ex.cost, answered)
            self.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """A prompt's tokens, counted as the rate limits count them (docs/limits.md)."""
        limiter = self._limiter
        return limiter.prompts.count(body) if limiter is not None else approximate(body)

    async def reserve(
        self,
        table: RoutingTable,
        limits: tuple[Limit, ...],
        ex: Exchange,
        key: str | None,
        body: dict[str, Any],
        out: Headers,
    ) -> Reservation | None:
        # Keyed as the key store keys it: a counter's name must not be a key's plain hash.
        key_id = hash_key(key, table.key_secret).hex()[:16] if key else ""
        who = Who(table.gateway, ex.consumer or "", key_id, ex.rule or "", ex.model or "")
        estimate = self.limiter(table).estimate(body, table.estimate_max_tokens)
        try:
            reservation, limit_headers = await self.limiter(table).reserve(limits, who, estimate)
        except RateLimited:
            self.runtime.metrics.ratelimited.labels(table.gateway, ex.rule or "").inc()
            raise
        for name, value in limit_headers.items():
            out.append((name.encode(), value.encode()))
        return reservation

    async def count_tokens(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        dialect: Dialect,
        table: RoutingTable | None = None,
    ) -> None:
        """``/v1/messages/count_tokens``: asked of the rule's Anthropic target,
        estimated locally for any other provider (docs/anthropic.md). It counts against
        request limits, spends no tokens, and is recorded like any request."""
        table = table or self.runtime.table
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, "count_tokens", dialect.name)
        span = self.tracing.request_span(headers, "count_tokens") if self.tracing else None
        inflight = self.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        try:
            consumer = await self.identify(table, incoming.key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            raw = await read_body(
                receive, table.max_body_bytes, incoming.content_length, table.body_timeout
            )
            audit = self.recorder.audit
            if audit is not None and audit.log_bodies:
                ex.bodies = Bodies(raw, audit.max_body_bytes)
            parsed = dialect.parse("count_tokens", raw)
            rule = self.match(table, consumer, parsed.model, scope, headers, incoming.request_id)
            ex.rule, ex.model = rule.name, parsed.model
            if audit is not None and rule.policies.log_bodies is not None:
                ex.bodies = Bodies(raw, audit.max_body_bytes) if rule.policies.log_bodies else None
            # Requests only: no token or spend item is reserved, so nothing needs settling.
            limits = counting(
                (*table.limits, *rule.limits, *consumer.limits), tokens=False, usd=False
            )
            if limits:
                await self.reserve(table, limits, ex, incoming.key, parsed.canonical, out)
            if rule.guard is not None:  # the provider counts the text it would be sent
                ex.screen = rule.guard.begin(dialect.name, "count_tokens")
                parsed, raw = ex.screen.request(dialect, parsed, raw, headers, self.prompt_tokens)
            first = rule.targets[0].service
            if first.adapter is not None and first.adapter.speaks(dialect.name):
                forwarded = _forwarded(dialect, headers)
                call = Call(
                    dialect, "count_tokens", parsed, raw, False, forwarded, consumer.name, headers
                )
                try:
                    await self.forward(table, rule, call, send, out, ex)
                finally:
                    ex.usage, ex.text_size = None, None  # a count, not tokens used
                return
            out.append(JSON)
            body = orjson.dumps({"input_tokens": estimate_tokens(parsed.native)})
            ex.status = 200
            await respond(send, 200, body, out)
            if ex.bodies is not None:
                ex.bodies.response = body
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            await respond_error(send, exc, out, dialect.name)
            if ex.bodies is not None:
                ex.bodies.response = exc.body(dialect.name)
        finally:
            inflight.dec()
            self.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    def match(
        self,
        table: RoutingTable,
        consumer: ConsumerEntry,
        model: str,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        request_id: str | None = None,
    ) -> CompiledRule:
        """The rule that serves ``model`` for ``consumer``; a model no rule serves is a 404,
        logged with the model asked for (and ``request_id``)."""
        if consumer.models is not None and model not in consumer.models:
            raise PermissionDenied(
                f"This key may not use the model '{model}'.",
                param="model",
                code="model_not_allowed",
            )
        candidates = table.candidates(model)
        if not candidates:
            events.unknown_model(request_id, model, consumer.name)
            raise ModelNotFound(
                f"The model '{model}' does not exist or is not served here.", param="model"
            )
        path = scope["path"] if scope["path"].startswith("/v1/") else "/v1" + scope["path"]
        named: dict[str, str] = {}
        if table.matches_headers:
            named = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        refused = False
        for rule in candidates:
            if not rule.accepts(path, named):
                continue
            if consumer.may_use(rule):
                return rule
            refused = True
        if refused:
            raise PermissionDenied(
                f"This key may not use the model '{model}'.", param="model", code="rule_not_allowed"
            )
        events.unknown_model(request_id, model, consumer.name)
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not served here.", param="model"
        )

    async def route(
        self,
        table: RoutingTable,
        rule: CompiledRule,
        body: dict[str, Any],
        model: str,
        headers: list[tuple[bytes, bytes]],
        consumer: ConsumerEntry,
        reservation: Reservation | None,
        out: Headers,
        ex: Exchange,
    ) -> list[Step]:
        """The rule's decision for this request (``body``: the canonical chat request, or a
        media request's fields), explained in ``x-sluicegate-route`` and the audit row,
        the refusal of a request no target can serve included (docs/routing.md)."""
        facts = facts_of(table, body, headers, consumer, reservation)
        key = sticky_key(rule.hash_on, consumer.name, headers)
        stats = self.runtime.route_stats
        embed = self.route_embedder(table)
        try:
            decision = await plan(table, rule, facts, model, stats, key, embed)
        except NoAbleTarget as exc:
            ex.route = exc.explain  # the refusal is explained too
            out.append((b"x-sluicegate-route", header_value(exc.explain)))
            raise
        ex.route = decision.explain
        out.append((b"x-sluicegate-route", header_value(decision.explain)))
        return decision.steps

    def route_embedder(self, table: RoutingTable) -> Embed:
        """What semantic routes embed with: the cache's local model, or an embeddings
        rule of ``table``."""

        async def via_rules(model: str, text: str) -> list[float]:
            return await self.embedding(table, model, text)

        return embedder(self.caches.local, via_rules)

    async def forward(
        self,
        table: RoutingTable,
        rule: CompiledRule,
        call: Call,
        send: Send,
        out: Headers,
        ex: Exchange | None = None,
        steps: list[Step] | None = None,
    ) -> None:
        """Try ``steps`` (default: the rule's plan, drawn now) until one answers."""
        attempts = 0
        failure: Failure | None = None
        http = self.runtime.http
        ex = ex or Exchange("", table.gateway, call.endpoint, call.dialect.name)
        if steps is None:
            steps = rule.plan(table.rng, sticky_key(rule.hash_on, call.consumer, call.headers))
        for index, step in enumerate(steps):
            service = step.service
            if service.adapter is None or call.endpoint not in service.adapter.endpoints:
                # Nothing is sent: the next step may be a provider that serves it.
                failure = Failure("unsupported", service, cause=_unsupported(service, call))
                ex.tried.append(Tried(service.name, None, "unsupported"))
                continue
            pool = service.pool
            key = pool.key(call.consumer, call.headers)
            for retry in range(service.retries + 1):
                if retry and failure is not None:
                    delay = backoff(service, retry, failure)
                    if delay is None:  # the provider asked for longer than we would wait
                        events.not_retried(ex.request_id, service.name, failure.retry_after)
                        break
                    events.retrying(ex.request_id, service.name, retry, service.retries, delay)
                    await asyncio.sleep(delay)
                now = time.monotonic()
                target = pool.pick(now, key)
                if target is None:
                    failure = Failure("unavailable", service, detail=pool.why_unavailable(now))
                    events.skipped(ex.request_id, service.name, failure.detail)
                    ex.tried.append(Tried(service.name, None, "unavailable"))
                    break
                attempts += 1
                target.health.begin(now)
                target.inflight += 1
                try:
                    result = await attempt(step, call, target, http)
                except BaseException:
                    target.inflight -= 1
                    raise
                finally:
                    spent = time.monotonic() - now
                    ex.upstream_seconds += spent
                arm = learn(self.runtime.route_stats, table, rule, step, spent, _failure(result))
                kind = result.kind if isinstance(result, Failure) else "status"
                ex.tried.append(
                    Tried(
                        service.name, target.url, outcome(kind, result.status), result.status, spent
                    )
                )
                if isinstance(result, Failure) or result.relay is None:
                    target.inflight -= 1  # a stream holds its target until it ends
                if isinstance(result, Failure):
                    failure = result
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
                ex.attempts, ex.fallbacks, ex.arm = attempts, index, arm
                ex.service, ex.provider = service.name, service.provider
                ex.upstream_model = step.model or call.parsed.model
                out.append((b"x-sluicegate-service", service.name.encode()))
                out.append((b"x-sluicegate-attempts", str(attempts).encode()))
                await self.deliver(result, send, out, ex, call.receive, service.timeouts.stream)
                return
            assert failure is not None
            if not rule.fallback_on.matches(failure.kind, failure.status, failure.code):
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

    async def deliver(
        self,
        result: Success,
        send: Send,
        out: Headers,
        ex: Exchange,
        receive: Receive | None = None,
        limit: float | None = None,
    ) -> None:
        ex.status = result.status
        screen = ex.screen
        if screen is not None:
            screen.answer_headers(out)
        if result.relay is None:
            assert result.body is not None
            if screen is not None:  # guardrails(out): rewritten, restored or refused
                result.body = screen.answer(result.body)
            out.append((b"content-type", result.content_type.encode("latin-1")))
            await respond(send, result.status, result.body, out)
            ex.ended = time.perf_counter()
            ex.usage = result.usage
            if ex.usage is None:
                markers = text_markers(ex.dialect, result.body)
                ex.text_size = text_size(result.body, markers)
            if ex.bodies is not None:
                ex.bodies.response = result.body
            return
        assert result.rest is not None and result.response is not None
        if ex.bodies is not None:  # the audit log assembles the answer from what is sent
            send = ex.bodies.tap(send)
        started = time.monotonic()
        try:
            await relay_stream(
                result.first,
                result.rest,
                result.response,
                send,
                out,
                result.relay,
                ex,
                receive,
                limit=limit,
                drain=self.drain.over,
            )
        finally:
            result.target.inflight -= 1
            streamed = time.monotonic() - started
            ex.upstream_seconds += streamed
            if ex.tried:  # the attempt that answered lasts until its stream ends
                ex.tried[-1].seconds += streamed

    async def forward_cached(
        self,
        table: RoutingTable,
        rule: CompiledRule,
        plan: CachePlan,
        call: Call,
        send: Send,
        out: Headers,
        ex: Exchange,
        steps: list[Step] | None = None,
    ) -> None:
        """``forward`` behind the rule's cache (docs/cache.md): a hit is replayed without
        an upstream call; a miss is forwarded and its complete answer kept."""
        # An answer with a client's own values put back (guardrails' restore) is never shared.
        if call.endpoint != "chat" or (call.screen is not None and call.screen.personal):
            ex.cache = "bypass"
            out.append((b"x-sluicegate-cache", b"bypass"))
            await self.forward(table, rule, call, send, out, ex, steps)
            return
        control = read_control(call.headers)
        # The plan is drawn first: the key names the service and model it resolves to.
        if steps is None:
            steps = rule.plan(table.rng, sticky_key(rule.hash_on, call.consumer, call.headers))
        first = steps[0]
        scope = CacheScope(table.gateway, rule.name, call.consumer if plan.per_consumer else None)
        model = first.model or call.parsed.model
        # The client's own headers reach only a provider of its dialect, so they split the
        # key only then: an OpenAI target answers both SDKs alike.
        adapter = first.service.adapter
        native = adapter is not None and adapter.speaks(call.dialect.name)
        headers = call.forwarded if native else {}

        async def route(embedder: str, text: str) -> list[float]:
            return await self.embedding(table, embedder, text)

        found = await self.caches.lookup(
            plan, scope, control, first.service.name, model, call.parsed, headers, route
        )
        ex.cache = found.result
        out.append((b"x-sluicegate-cache", found.result.encode()))
        if found.entry is not None:
            await self.replay(found, call, send, out, ex)
            return
        capture = Capture(MAX_ANSWER_BYTES)
        await self.forward(table, rule, call, capture.tap(send), out, ex, steps)
        if ex.status == 200 and ex.error_type is None and ex.service and ex.upstream_model:
            answered_by = (ex.service, ex.provider or "", ex.upstream_model)
            await self.caches.store(
                found,
                capture,
                call.dialect.name,
                call.stream,
                answered_by,
                call.parsed,
                headers,
                ex.usage,
            )

    async def replay(
        self, found: Lookup, call: Call, send: Send, out: Headers, ex: Exchange
    ) -> None:
        """Answer from the cache: a whole answer or a stream, in the client's dialect."""
        entry = found.entry
        assert entry is not None
        ex.status, ex.attempts = 200, 0
        ex.service, ex.provider, ex.upstream_model = entry.service, entry.provider, entry.model
        ex.usage, ex.cost = entry.usage, 0.0  # the tokens saved, at no cost
        out.append((b"x-sluicegate-service", entry.service.encode()))
        out.append((b"x-sluicegate-attempts", b"0"))
        if found.similarity is not None:
            out.append((b"x-sluicegate-cache-similarity", f"{found.similarity:.4f}".encode()))
        if not call.stream:
            body = replay_body(call.dialect, entry)
            out.append(JSON)
            await respond(send, 200, body, out)
            if ex.bodies is not None:
                ex.bodies.response = body
            return
        payload = replay_stream(call.dialect, call.parsed.canonical, entry)
        if ex.bodies is not None:
            send = ex.bodies.tap(send)
        out.extend(STREAM_HEADERS)
        await send({"type": "http.response.start", "status": 200, "headers": out})
        ex.first_token = time.perf_counter() - ex.started
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    async def embedding(self, table: RoutingTable, model: str, text: str) -> list[float]:
        """The embedding of ``text`` by ``model`` as ``table`` routes it (the semantic
        cache's embedder, when it is not the local model)."""
        # The gateway asks itself: any rule for the model will do, whoever the client is.
        consumer = table.anonymous or ConsumerEntry("sluicegate-cache", None, b"")
        raw = orjson.dumps({"model": model, "input": text})
        dialect = self._openai
        parsed = dialect.parse("embeddings", raw)
        scope: Scope = {"path": "/v1/embeddings"}
        rule = self.match(table, consumer, model, scope, [])
        call = Call(dialect, "embeddings", parsed, raw, False, {}, consumer.name, [])
        sink = _Sink()
        await self.forward(table, rule, call, sink, [])
        data = orjson.loads(sink.body)
        vector = data["data"][0]["embedding"]
        assert isinstance(vector, list)
        return vector


class _Sink:
    """An ASGI ``send`` that keeps the body (the gateway's requests to itself)."""

    def __init__(self) -> None:
        self.body = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.body += message.get("body", b"")
