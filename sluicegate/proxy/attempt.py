"""One attempt: pick a target, build and sign the provider request, send it, read the start.

An attempt ends in a ``Success`` (a whole answer in the client's dialect, or a
stream whose first chunk has already arrived) or a ``Failure`` that says what
went wrong. Nothing has reached the client at that point, so any failure can
still be retried or fall back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from sluicegate.asgi import Receive
from sluicegate.credentials.redact import redact, redact_error
from sluicegate.dialects.base import Dialect, Parsed
from sluicegate.errors import (
    GatewayError,
    NoHealthyUpstream,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)
from sluicegate.proxy.streaming import Passthrough, Relay, Translated
from sluicegate.routing.balancer import Target
from sluicegate.routing.table import CompiledService, Step
from sluicegate.telemetry.events import printable
from sluicegate.telemetry.usage import TokenCounts, read_usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from sluicegate.guardrails.policy import Screen
    from sluicegate.providers.base import UpstreamRequest
    from sluicegate.proxy.upstream import Transport, UpstreamResponse
    from sluicegate.telemetry.tracing import Tracing

_MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Call:
    """One client request, read once, shared by every attempt."""

    dialect: Dialect
    endpoint: str
    parsed: Parsed
    raw: bytes
    stream: bool
    forwarded: dict[str, str]  # client headers a provider of the client's dialect should see
    consumer: str
    headers: list[tuple[bytes, bytes]]
    trace: tuple[Tracing, Span] | None = None  # the tracer and the request's span, when tracing
    receive: Receive | None = None  # the client's side of the connection, watched by streams
    screen: Screen | None = None  # the rule's guardrails and transforms (docs/guardrails.md)


@dataclass(slots=True)
class Failure:
    """Why an attempt failed, kept until the plan is spent."""

    kind: str  # "status" | "connect" | "timeout" | "invalid" | "unavailable" | "unsupported"
    service: CompiledService
    status: int | None = None
    detail: str = ""
    cause: GatewayError | None = None  # the provider's own 4xx, translated
    retry_after: float | None = None
    said: str | None = None  # the provider's own message, its credentials taken out

    def describe(self) -> str:
        """For the log: the status and what the provider said, or what went wrong."""
        if self.kind != "status":
            return f"{self.kind}: {self.detail}" if self.detail else self.kind
        if not self.said:
            return f"status {self.status}"
        return f"status {self.status}, the provider said: {printable(self.said)}"

    @property
    def code(self) -> str | None:
        return self.cause.code if self.cause is not None else None

    def error(self) -> GatewayError:
        name = self.service.name
        if self.cause is not None:
            if self.cause.code == "upstream_auth_failed" and name not in self.cause.message:
                self.cause.message = f"service '{name}': {self.cause.message}"
            return self.cause
        if self.kind == "auth":
            return UpstreamError(
                f"service '{name}' could not obtain credentials: {self.detail}",
                code="upstream_auth_failed",
            )
        if self.kind == "unavailable":
            return NoHealthyUpstream(f"service '{name}': {self.detail}")
        if self.kind == "timeout":
            return UpstreamTimeout(f"service '{name}' timed out: {self.detail}")
        if self.kind == "connect":
            return UpstreamError(f"service '{name}': {self.detail}")
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
        return UpstreamError(
            f"service '{name}' failed with status {status}", code=f"upstream_status_{status}"
        )

    def retryable(self) -> bool:
        """Worth another attempt on the same service (another target may differ)."""
        if self.kind != "status":
            return self.kind not in ("unavailable", "auth")
        status = self.status or 0
        if status >= 500:
            return True
        if status != 429 or self.code == "insufficient_quota":
            return False  # an account out of quota stays so, whatever the wait
        # The provider said when to come back (the backoff decides whether that is soon
        # enough); without that, another target may have room, the same one would not.
        return self.retry_after is not None or len(self.service.pool.targets) > 1


@dataclass(slots=True)
class Success:
    target: Target
    status: int
    content_type: str
    body: bytes | None  # None: a stream, see below
    relay: Relay | None = None
    first: bytes = b""
    rest: AsyncGenerator[bytes, None] | None = None
    response: UpstreamResponse | None = None
    usage: TokenCounts | None = None  # a whole answer's, read while it was checked


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: treated as "not soon"


async def attempt(step: Step, call: Call, target: Target, http: Transport) -> Success | Failure:
    service = step.service
    adapter = service.adapter
    endpoint = call.endpoint
    if adapter is None or endpoint not in adapter.endpoints:
        what = f"provider '{service.provider}'"
        return Failure("connect", service, detail=f"{what} does not serve /{endpoint}")
    model = step.model or call.parsed.model
    native = adapter.speaks(call.dialect.name)
    data = b""
    if native:
        # The client spoke this provider's own API: its bytes go on as they
        # came, unless the rule renamed the model or the dialect had to edit them.
        body = call.parsed.wire or call.parsed.native
        same = call.parsed.wire is None and body.get("model") == model
        data = call.raw if same else orjson.dumps({**body, "model": model})
        endpoint = call.dialect.native_endpoints.get(endpoint, endpoint)
    request = adapter.build(endpoint, call.parsed.canonical, data, model, target.url + service.path)
    if native and call.forwarded:
        request.headers.update(adapter.forwarded(call.forwarded))
    for name, value in service.headers:
        request.headers[name] = value
    if call.screen is not None:
        call.screen.upstream_headers(request.headers, call.headers)
    if call.trace is None:
        return await _send(step, call, target, http, request, model, native, endpoint)
    tracing, parent = call.trace
    span = tracing.attempt_span(parent, service.name, service.provider, model)
    tracing.inject(span, request.headers)
    result = await _send(step, call, target, http, request, model, native, endpoint)
    if isinstance(result, Failure):
        span.set_attribute("error.type", result.kind)
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
    else:
        span.set_attribute("http.response.status_code", result.status)
    address = urlsplit(target.url)  # the host and port only: a URL may carry more
    span.set_attribute("server.address", address.hostname or "")
    if address.port is not None:
        span.set_attribute("server.port", address.port)
    span.end()
    return result


async def _send(
    step: Step,
    call: Call,
    target: Target,
    http: Transport,
    request: UpstreamRequest,
    model: str,
    native: bool,
    endpoint: str,
) -> Success | Failure:
    service = step.service
    adapter = service.adapter
    assert adapter is not None
    signer = service.signer
    if signer is not None:
        if signer.needs_prepare:
            try:
                await signer.prepare(http)
            except TransportError as exc:
                detail = str(exc) if exc.kind == "auth" else f"could not obtain credentials: {exc}"
                return Failure(exc.kind, service, detail=detail)
        signer.sign(request)
    transport = service.transport or http
    timeouts = service.timeouts
    started = time.monotonic()
    try:
        response = await transport.open(request, timeouts, tls=service.tls)
    except TransportError as exc:
        return Failure(exc.kind, service, detail=str(exc))
    if response.status >= 400:
        return await _failed(response, service, request)
    content_type = response.headers.get("content-type", "application/json")
    # A provider that answers a stream request with plain JSON (an error
    # object, or a server that ignores `stream`) is read as a whole answer.
    if call.stream and not content_type.startswith("application/json"):
        chunks = response.chunks()
        remaining = max(timeouts.first_byte_limit - (time.monotonic() - started), 0.001)
        try:
            async with asyncio.timeout(remaining):
                first = await anext(chunks)
        except TimeoutError:
            await chunks.aclose()
            return Failure(
                "timeout", service, detail="no first token within the first-byte timeout"
            )
        except StopAsyncIteration:
            return Failure("invalid", service, detail="the stream was empty")
        except TransportError as exc:
            return Failure(exc.kind, service, detail=str(exc))
        target.observe(time.monotonic() - started, time.monotonic())
        relay: Relay
        # Output guardrails read text, so a guarded stream is decoded even from a same-dialect
        # provider; each attempt starts with scanners of its own.
        guard = call.screen.stream_guard() if call.screen is not None else None
        if native and guard is None:
            relay = Passthrough(
                call.dialect, adapter.passthrough_edits(endpoint, call.parsed.native)
            )
        else:
            decoder = adapter.stream_decoder(endpoint, model)
            encoder = call.dialect.stream_encoder(call.parsed.canonical, model)
            relay = Translated(decoder, encoder, guard)
        return Success(target, 200, content_type, None, relay, first, chunks, response)
    # A whole answer is read (and decoded) inside the attempt, so a read that
    # breaks or stalls, or an unreadable answer, is retried.
    try:
        answer = await response.read(service.max_answer_bytes)
    except TransportError as exc:
        return Failure(exc.kind, service, detail=str(exc))
    target.observe(time.monotonic() - started, time.monotonic())
    if native:
        # Relayed untouched, but a cut or non-JSON answer is the upstream's failure (a 502
        # the client can read, and a retry), not a 200 no SDK can decode. The one parse
        # also gives the usage.
        try:
            document = orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            return Failure("invalid", service, detail=type(exc).__name__)
        usage = read_usage(document.get("usage")) if isinstance(document, dict) else None
        return Success(target, response.status, content_type, answer, usage=usage)
    try:
        canonical = adapter.decode(endpoint, answer, model, call.parsed.canonical)
    except GatewayError as exc:  # e.g. a prompt the provider's filter blocked
        return Failure("status", service, exc.http_status, cause=exc)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        return Failure("invalid", service, detail=type(exc).__name__)
    if not canonical.get("model"):
        canonical["model"] = model  # some providers do not name it
    answer = call.dialect.encode_response(endpoint, canonical)
    usage = read_usage(canonical.get("usage"))
    return Success(target, response.status, "application/json", answer, usage=usage)


async def _failed(
    response: UpstreamResponse, service: CompiledService, request: UpstreamRequest
) -> Failure:
    secrets = service.signer.secrets(request) if service.signer is not None else []
    return await failed_answer(response, service, secrets)


async def failed_answer(
    response: UpstreamResponse, service: CompiledService, secrets: list[str]
) -> Failure:
    """The ``Failure`` of a provider's error answer: its own 4xx translated for the client,
    and what it said for the log, with the request's credentials (``secrets``) taken out."""
    try:
        body = (await response.read())[:_MAX_ERROR_BODY]
    except TransportError:
        body = b""
    status = response.status
    headers = {k.lower(): v for k, v in response.headers.items()}
    cause = None
    said = None
    if status < 500 and status not in (401, 403) and service.adapter is not None:
        cause = service.adapter.error(status, headers, body)
        # The provider may quote the request's credentials.
        said = redact_error(cause, secrets).message
    elif service.adapter is not None and body:
        try:  # a 5xx, or the gateway's own credentials refused: only the log hears it
            said = redact(service.adapter.error(status, headers, body).message, secrets)
        except Exception:  # an error body no adapter can read is said as nothing
            said = None
    failure = Failure("status", service, status, cause=cause, retry_after=_retry_after(headers))
    failure.said = said
    return failure
