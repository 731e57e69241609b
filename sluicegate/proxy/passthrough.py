"""Native pass-through: ``/passthrough/{service}/{path…}`` forwards a provider's own API.

The request goes to the service's base URL (its target's URL and ``path``) plus the path
and query the client sent, with its method, headers and body as they came, but for the
client's key and the hop-by-hop headers; the service's ``headers`` and credentials are
added (a header key, a query parameter, SigV4, an Entra ID or Google token). The answer
comes back as the provider sent it (status, headers, body left compressed), streamed both
ways: neither body is held whole, except a request body a signature covers (SigV4), read
within ``gateway.max_body_bytes`` first.

The caller needs a gateway key and the service in its consumer's ``passthrough`` list, or a
rule it may use that targets the service and neither screens nor transforms requests
(``routing.reach``). What the service's modelled routes refuse, its native route refuses
too (``Adapter.check_native``, ``features``): paths outside a Vertex project, gs:// URIs,
anthropic-beta names the service does not list. Request limits and budgets of the gateway
and the consumer apply; nothing is counted as tokens (the gateway does not read the
provider's own shapes). Each call is an audit row with endpoint ``passthrough``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus, unquote_to_bytes

from sluicegate.asgi import NOSNIFF, Headers, Receive, Scope, Send, read_body, respond_error
from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    NoHealthyUpstream,
    NotFound,
    PermissionDenied,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)
from sluicegate.policies.rate_limit import counting
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.byte_relay import relay_bytes
from sluicegate.proxy.handler import read_headers
from sluicegate.proxy.upload import Upload
from sluicegate.proxy.upstream import HttpTransport, NativeResponse
from sluicegate.routing.reach import why_not
from sluicegate.routing.table import CompiledRule, CompiledService, ConsumerEntry, RoutingTable
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.tracing import Tracing
from sluicegate.telemetry.usage import TokenCounts

if TYPE_CHECKING:
    from sluicegate.policies.rate_limit import Limit, Reservation
    from sluicegate.proxy.handler import Proxy

PREFIX = b"/passthrough/"

# Never forwarded, either way (RFC 9110 7.6.1), nor any header a Connection header names.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Where clients put the gateway's key: OpenAI's and Anthropic's SDKs, Azure's ``api-key``,
# Google's ``x-goog-api-key``. Never sent on: the service's own credentials take their place.
KEY_HEADERS = (b"authorization", b"x-api-key", b"api-key", b"x-goog-api-key")
# Set by the HTTP client for the request it sends; ``expect`` is the server's to answer.
_REQUEST_ONLY = frozenset({b"host", b"expect", *KEY_HEADERS})


def native_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The gateway key from ``api-key`` or ``x-goog-api-key`` (the SDKs of Azure and Google)."""
    for name, value in headers:
        if name in (b"api-key", b"x-goog-api-key"):
            return value.decode("latin-1")
    return None


def split_path(scope: Scope) -> tuple[str, bytes]:
    """The service named in the path and the rest of the path as the client encoded it."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    at = raw.find(PREFIX)  # after a /gw/<name> prefix, if any
    rest = raw[at + len(PREFIX) :] if at >= 0 else b""
    name, slash, tail = rest.partition(b"/")
    if not name:
        raise NotFound("Name a service: /passthrough/{service}/{path}.", code="service_not_found")
    path = slash + tail
    check_segments(path)
    return unquote_to_bytes(name).decode("utf-8", "replace"), path


def check_segments(path: bytes) -> None:
    """Refuse a path that would climb out of the service's base path once decoded, as the
    provider's server will decode it."""
    for segment in path.split(b"/"):
        if unquote_to_bytes(segment).replace(b"\\", b"/").strip(b"/") in (b".", b".."):
            raise InvalidRequest(
                "A pass-through path may not hold '.' or '..' segments.", code="invalid_path"
            )
        if b"\\" in unquote_to_bytes(segment):
            raise InvalidRequest("A pass-through path may not hold '\\'.", code="invalid_path")


def rule_path(scope: Scope) -> tuple[str, bytes]:
    """A path routed by a rule: the path rules compare (``/v1/…``), and the rest of it after
    ``/v1`` as the client encoded it, which goes on after the service's base URL (itself
    ``…/v1`` for most providers)."""
    path: str = scope["path"]
    raw: bytes = scope.get("raw_path") or path.encode()
    tail = raw[raw.find(b"/v1/") + 3 :] if b"/v1/" in raw else raw
    tail = tail.partition(b"?")[0]
    check_segments(tail)
    return (path if path.startswith("/v1/") else "/v1" + path), tail


def without_key(query: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The query string less any parameter that carries the gateway key the client sent
    (``?key=`` as Google's clients write it): never forwarded, like the key's headers."""
    keys = {k for k in (read_headers(headers).key, native_key(headers)) if k}
    if not query or not keys:
        return query
    kept = [
        pair
        for pair in query.split(b"&")
        if unquote_plus(pair.partition(b"=")[2].decode("latin-1")) not in keys
    ]
    return b"&".join(kept)


def _dropped(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The hop-by-hop headers of a message: the fixed ones and those its Connection names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return HOP_BY_HOP | named


def forwarded_headers(
    headers: list[tuple[bytes, bytes]], signed: dict[str, str]
) -> list[tuple[str, str]]:
    """The client's headers that go on, then the service's headers and credentials (which
    replace any of the client's of the same name)."""
    drop = _dropped(headers) | _REQUEST_ONLY | {n.lower().encode() for n in signed}
    out = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name not in drop
    ]
    out.extend(signed.items())
    return out


def features(
    service: CompiledService, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The client's headers with the provider feature headers (``anthropic-beta``) cut to
    what the service allows, as on its modelled routes: a feature runs as the gateway's
    account with the provider."""
    asked = [value.decode("latin-1") for name, value in headers if name == b"anthropic-beta"]
    if not asked or service.adapter is None:
        return headers
    kept = service.adapter.forwarded({"anthropic-beta": ",".join(asked)})
    out = [(name, value) for name, value in headers if name != b"anthropic-beta"]
    out.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in kept.items())
    return out


def answer_headers(response: NativeResponse, out: Headers) -> Headers:
    """The provider's headers, minus hop-by-hop ones and any the gateway sets itself."""
    raw = [(k.lower(), v) for k, v in response.raw_headers]
    own = {name for name, _ in out}
    drop = _dropped(raw) | own
    return [*((k, v) for k, v in raw if k not in drop), *out]


class NativeProxy:
    """Serves ``/passthrough/…`` with the data plane's authentication, limits and records."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @staticmethod
    def routes(table: RoutingTable, path: str) -> bool:
        """Whether a rule's ``match.paths`` names ``path`` (one the gateway does not model)."""
        path = path if path.startswith("/v1/") else "/v1" + path
        return any(r.paths is not None and r.takes_path(path) for r in table.rules)

    def by_rule(
        self, table: RoutingTable, consumer: ConsumerEntry, scope: Scope
    ) -> tuple[CompiledRule, CompiledService, bytes]:
        """The first rule whose ``match.paths`` names the request's path and that the caller
        may use; the service of its weighted pick; the path to send."""
        path, tail = rule_path(scope)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        named = [r for r in table.rules if r.paths is not None and r.accepts(path, headers)]
        for rule in named:
            if consumer.may_use(rule):
                if rule.guard is not None:  # a native body is never screened
                    raise PermissionDenied(
                        f"Rule '{rule.name}' has guardrails or transforms, which a native "
                        "body would pass unscreened.",
                        code="rule_not_allowed",
                    )
                return rule, rule.pick(table.rng).service, tail
        if named:
            raise PermissionDenied(f"This key may not use {path}.", code="rule_not_allowed")
        raise NotFound(f"Unknown path {scope['method']} {path}.", code="unknown_path")

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: RoutingTable,
        routed: bool = False,
    ) -> None:
        """``routed``: the path is one a rule names (``routes``), not ``/passthrough/…``."""
        proxy = self.proxy
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        incoming = read_headers(headers)
        key = incoming.key or native_key(headers)
        out: Headers = [(b"x-request-id", incoming.request_id.encode()), NOSNIFF]
        ex = Exchange(incoming.request_id, table.gateway, "passthrough", "native")
        tracing = proxy.tracing
        span = tracing.request_span(headers, "passthrough") if tracing is not None else None
        inflight = proxy.runtime.metrics.inflight.labels(table.gateway)
        inflight.inc()
        reservation: Reservation | None = None
        started = False
        try:
            consumer = await proxy.identify(table, key, scope)
            ex.consumer, ex.key_prefix = consumer.name, consumer.prefix
            rule_limits: tuple[Limit, ...] = ()
            if routed:
                rule, service, path = self.by_rule(table, consumer, scope)
                name, ex.rule, rule_limits = service.name, rule.name, rule.limits
            else:
                name, path = split_path(scope)
                found = table.services.get(name)
                if found is None:
                    raise NotFound(f"No service named '{name}'.", code="service_not_found")
                service = found
                refused = why_not(table, consumer, name)
                if refused is not None:
                    raise PermissionDenied(
                        f"This key may not reach service '{name}': {refused}.",
                        code="service_not_allowed",
                    )
            if service.transport is not None or service.adapter is None:
                raise InvalidRequest(
                    f"Service '{name}' (provider '{service.provider}') has no HTTP API to pass "
                    "through to.",
                    code="unsupported_endpoint",
                )
            limits = counting((*table.limits, *rule_limits, *consumer.limits), tokens=False)
            if limits:
                reservation = await proxy.reserve(table, limits, ex, key, {}, out)
            started = await self.forward(scope, receive, send, table, service, path, out, ex)
        except GatewayError as exc:
            ex.status, ex.error_type = exc.http_status, exc.client_type
            if not started:
                await respond_error(send, exc, out)
        finally:
            inflight.dec()
            if reservation is not None:
                answered = 200 <= ex.status < 400
                await proxy.limiter(table).settle(reservation, TokenCounts(), 0.0, answered)
            proxy.recorder.record(ex, table)
            if span is not None:
                Tracing.finish(span, ex)

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        table: RoutingTable,
        service: CompiledService,
        path: bytes,
        out: Headers,
        ex: Exchange,
    ) -> bool:
        """Send the request and relay the answer; whether the answer had begun (a failure
        after that can only cut it short)."""
        http = self.proxy.runtime.http
        transport = service.transport or http
        if not isinstance(transport, HttpTransport):
            raise InvalidRequest(f"Service '{service.name}' has no HTTP API to pass through to.")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        ex.service, ex.provider = service.name, service.provider
        now = time.monotonic()
        target = service.pool.pick(now, service.pool.key(ex.consumer or "", headers))
        if target is None:
            raise NoHealthyUpstream(
                f"service '{service.name}': {service.pool.why_unavailable(now)}"
            )
        url = target.url + service.path + path.decode("latin-1")
        query = without_key(scope.get("query_string", b""), headers)
        if query:
            url += "?" + query.decode("latin-1")
        request = UpstreamRequest(scope["method"], url, dict(service.headers), b"")
        declared = read_headers(headers).content_length
        signer = service.signer
        adapter = service.adapter
        upload: Upload | None = None
        body: bytes | AsyncGenerator[bytes, None] = b""
        whole = (signer is not None and signer.signs_body) or (
            adapter is not None and adapter.reads_native_bodies
        )
        if not any(n == b"content-length" or n == b"transfer-encoding" for n, _ in headers):
            if adapter is not None:
                adapter.check_native(path.decode("latin-1"), b"")
        elif whole:
            request.body = body = await read_body(
                receive, table.max_body_bytes, declared, table.body_timeout
            )
            if adapter is not None:
                adapter.check_native(path.decode("latin-1"), body)
        else:
            if adapter is not None:
                adapter.check_native(path.decode("latin-1"), None)
            upload = Upload(receive, table.max_body_bytes, declared, table.body_timeout)
            body = upload.parts()
        if signer is not None:
            if signer.needs_prepare:
                try:
                    await signer.prepare(http)
                except TransportError as exc:
                    raise UpstreamError(
                        f"service '{service.name}' could not obtain credentials: {exc}",
                        code="upstream_auth_failed",
                    ) from None
            signer.sign(request)
        ex.attempts = 1
        out.append((b"x-sluicegate-service", service.name.encode()))
        out.append((b"x-sluicegate-attempts", b"1"))
        target.health.begin(now)
        target.inflight += 1
        try:
            try:
                response = await transport.open_native(
                    request,
                    forwarded_headers(features(service, headers), request.headers),
                    body,
                    service.timeouts,
                    service.tls,
                )
            except TransportError as exc:
                if upload is not None and upload.error is not None:
                    raise upload.error from None  # the client's fault, not the provider's
                target.health.failed(exc.kind, None, time.monotonic())
                if exc.kind == "timeout":
                    raise UpstreamTimeout(f"service '{service.name}' timed out: {exc}") from None
                raise UpstreamError(f"service '{service.name}': {exc}") from None
            finally:
                ex.upstream_seconds += time.monotonic() - now
            target.health.succeeded()
            target.observe(time.monotonic() - now, time.monotonic())
            ex.status = response.status
            await relay_bytes(
                response,
                send,
                answer_headers(response, out),
                receive,
                ex,
                service.timeouts.stream,
                self.proxy.drain.over,
            )
            return True
        finally:
            target.inflight -= 1
