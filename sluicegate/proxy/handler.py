"""The one request path: authenticate, match, plan, attempt, relay.

Everything a request needs comes from the routing table it started with;
nothing here reads config, touches a database or builds a model of the body.
The body is parsed once; the provider request is built per attempt, so a
retry never sees an edit twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from sluicegate.asgi import JSON, Headers, Receive, Scope, Send, read_body, respond, respond_error
from sluicegate.dialects.anthropic import estimate_tokens
from sluicegate.dialects.base import Dialect, Parsed
from sluicegate.errors import (
    AuthenticationError,
    GatewayError,
    ModelNotFound,
    NoHealthyUpstream,
    PermissionDenied,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)
from sluicegate.proxy.streaming import Passthrough, Relay, Translated, relay_stream
from sluicegate.routing.table import (
    CompiledRule,
    CompiledService,
    ConsumerEntry,
    RoutingTable,
    Step,
)

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import UpstreamResponse
    from sluicegate.runtime import Runtime

_MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Failure:
    """Why the last attempt failed, kept until the plan is spent."""

    kind: str  # "status" | "connect" | "timeout" | "invalid"
    service: CompiledService
    status: int | None = None
    headers: dict[str, str] | None = None
    body: bytes = b""
    detail: str = ""

    def error(self) -> GatewayError:
        name = self.service.name
        if self.kind == "timeout":
            return UpstreamTimeout(f"service '{name}' timed out: {self.detail}")
        if self.kind == "connect":
            return UpstreamError(f"service '{name}' could not be reached: {self.detail}")
        if self.kind == "invalid":
            return UpstreamError(
                f"service '{name}' sent an answer that could not be read: {self.detail}"
            )
        status = self.status or 502
        if status in (401, 403):
            # The gateway's credentials were refused: the client can do nothing about it.
            return UpstreamError(
                f"service '{name}' refused the gateway's credentials (status {status})",
                code="upstream_auth_failed",
            )
        if status == 529:
            return NoHealthyUpstream(f"service '{name}' is overloaded", code="upstream_overloaded")
        if status >= 500:
            return UpstreamError(
                f"service '{name}' failed with status {status}",
                code=f"upstream_status_{status}",
            )
        if self.service.adapter is None:
            return UpstreamError(f"service '{name}' answered {status}")
        return self.service.adapter.error(status, self.headers or {}, self.body)


@dataclass(slots=True)
class Success:
    response: UpstreamResponse
    content_type: str
    body: bytes | None  # None: a stream still to relay
    relay: Relay | None = None


@dataclass(slots=True)
class Call:
    """One client request, read once, shared by every attempt."""

    dialect: Dialect
    endpoint: str
    parsed: Parsed
    raw: bytes
    stream: bool
    forwarded: dict[str, str]


def _retryable(status: int | None, service: CompiledService) -> bool:
    # A 429 from the only target would just be asked again; with several
    # targets the next one may have room.
    if status is None or status >= 500:
        return True
    return status == 429 and len(service.balancer.urls) > 1


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
    return Incoming(rid or os.urandom(16).hex(), key, length)


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

    def authenticate(self, table: RoutingTable, key: str | None) -> ConsumerEntry:
        consumer = table.authenticate(key)
        if consumer is None:
            if key is None:
                raise AuthenticationError(
                    "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                    code="missing_api_key",
                )
            raise AuthenticationError("Invalid API key.")
        return consumer

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = read_headers(scope["headers"])
        out: Headers = [(b"x-request-id", incoming.request_id.encode())]
        try:
            consumer = self.authenticate(self.runtime.table, incoming.key)
        except GatewayError as exc:
            await respond_error(send, exc, out)
            return
        out.append(JSON)
        await respond(send, 200, consumer.models_body, out)

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, endpoint: str, dialect: Dialect
    ) -> None:
        table = self.runtime.table  # this request finishes on the table it started with
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode())]
        try:
            consumer = self.authenticate(table, incoming.key)
            raw = await read_body(receive, table.max_body_bytes, incoming.content_length)
            parsed = dialect.parse(endpoint, raw)
            rule = self.match(table, consumer, parsed.model, scope, headers)
            stream = parsed.canonical.get("stream") is True
            call = Call(dialect, endpoint, parsed, raw, stream, _forwarded(dialect, headers))
            await self.forward(table, rule, call, send, out)
        except GatewayError as exc:
            await respond_error(send, exc, out, dialect.name)

    async def count_tokens(
        self, scope: Scope, receive: Receive, send: Send, dialect: Dialect
    ) -> None:
        """``/v1/messages/count_tokens``: asked of the rule's Anthropic target,
        estimated locally for any other provider (docs/anthropic.md)."""
        table = self.runtime.table
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode())]
        try:
            consumer = self.authenticate(table, incoming.key)
            raw = await read_body(receive, table.max_body_bytes, incoming.content_length)
            parsed = dialect.parse("count_tokens", raw)
            rule = self.match(table, consumer, parsed.model, scope, headers)
            first = rule.targets[0].service
            if first.adapter is not None and first.adapter.passthrough_dialect == dialect.name:
                call = Call(
                    dialect, "count_tokens", parsed, raw, False, _forwarded(dialect, headers)
                )
                await self.forward(table, rule, call, send, out)
                return
            out.append(JSON)
            body = orjson.dumps({"input_tokens": estimate_tokens(parsed.native)})
            await respond(send, 200, body, out)
        except GatewayError as exc:
            await respond_error(send, exc, out, dialect.name)

    def match(
        self,
        table: RoutingTable,
        consumer: ConsumerEntry,
        model: str,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
    ) -> CompiledRule:
        candidates = table.candidates(model)
        if not candidates:
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
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not served here.", param="model"
        )

    async def forward(
        self, table: RoutingTable, rule: CompiledRule, call: Call, send: Send, out: Headers
    ) -> None:
        attempts = 0
        failure: Failure | None = None
        for step in rule.plan(table.rng):
            service = step.service
            for _ in range(service.retries + 1):
                attempts += 1
                result = await self.attempt(step, call)
                if isinstance(result, Failure):
                    failure = result
                    if failure.kind == "status" and not _retryable(failure.status, service):
                        break
                    continue
                out.append((b"x-sluicegate-service", service.name.encode()))
                out.append((b"x-sluicegate-attempts", str(attempts).encode()))
                await self.deliver(result, send, out)
                return
            assert failure is not None
            if not rule.fallback_on.matches(failure.kind, failure.status):
                break
        assert failure is not None
        out.append((b"x-sluicegate-service", failure.service.name.encode()))
        out.append((b"x-sluicegate-attempts", str(attempts).encode()))
        raise failure.error()

    async def attempt(self, step: Step, call: Call) -> Success | Failure:
        service = step.service
        adapter = service.adapter
        endpoint = call.endpoint
        if adapter is None or endpoint not in adapter.endpoints:
            what = f"provider '{service.provider}'"
            return Failure("connect", service, detail=f"{what} does not serve /{endpoint} yet")
        model = step.model or call.parsed.model
        native = adapter.passthrough_dialect == call.dialect.name
        data = b""
        if native:
            # The client spoke this provider's own API: its bytes go on as they
            # came, unless the rule renamed the model.
            body = call.parsed.native
            data = (
                call.raw if body.get("model") == model else orjson.dumps({**body, "model": model})
            )
        request = adapter.build(
            endpoint, call.parsed.canonical, data, model, service.balancer.pick()
        )
        if native:
            request.headers.update(call.forwarded)
        for name, value in service.headers:
            request.headers[name] = value
        transport = service.transport or self.runtime.http
        signer = service.signer
        if signer is not None:
            if signer.needs_prepare:
                try:
                    await signer.prepare(self.runtime.http)
                except TransportError as exc:
                    return Failure(exc.kind, service, detail=f"could not obtain credentials: {exc}")
            signer.sign(request)
        try:
            response = await transport.open(request, service.timeouts)
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        if response.status >= 400:
            try:
                error_body = await response.read()
            except TransportError:
                error_body = b""
            return Failure(
                "status",
                service,
                status=response.status,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=error_body[:_MAX_ERROR_BODY],
            )
        content_type = response.headers.get("content-type", "application/json")
        # A provider that answers a stream request with plain JSON (an error
        # object, or a server that ignores `stream`) is read as a whole answer.
        if call.stream and not content_type.startswith("application/json"):
            relay: Relay
            if native:
                relay = Passthrough(call.dialect)
            else:
                decoder = adapter.stream_decoder(endpoint, model)
                relay = Translated(
                    decoder, call.dialect.stream_encoder(call.parsed.canonical, model)
                )
            return Success(response, content_type, None, relay)
        # A whole answer is read (and decoded) inside the attempt, so a read
        # that breaks or stalls, or an unreadable answer, is retried.
        try:
            answer = await response.read()
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        if not native:
            try:
                canonical = adapter.decode(endpoint, answer)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
                return Failure("invalid", service, detail=type(exc).__name__)
            answer = call.dialect.encode_response(endpoint, canonical)
            content_type = "application/json"
        return Success(response, content_type, answer)

    async def deliver(self, result: Success, send: Send, out: Headers) -> None:
        if result.relay is not None:
            await relay_stream(result.response, send, out, result.relay)
            return
        assert result.body is not None
        out.append((b"content-type", result.content_type.encode("latin-1")))
        await respond(send, result.response.status, result.body, out)
