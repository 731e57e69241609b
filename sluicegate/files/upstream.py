"""Calls to a provider's Files, Batches and Message Batches APIs: its URLs, its credentials,
its errors in the client's shape.

Where each API lives under a service's base URL:

    openai (and OpenAI-compatible servers)   {base}/files, {base}/batches
    azure, a dated api_version               {base}/files?api-version=…  (base: …/openai)
    azure, api_version v1                    {base}/v1/files
    anthropic                                {base}/messages/batches (base: …/v1)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from sluicegate.credentials.redact import redact_error
from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    NoHealthyUpstream,
    TransportError,
    UpstreamError,
    UpstreamTimeout,
)
from sluicegate.providers.azure import V1, AzureAdapter
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.attempt import Failure
from sluicegate.proxy.upload import Upload
from sluicegate.proxy.upstream import HttpTransport, NativeResponse, Transport
from sluicegate.routing.table import CompiledService
from sluicegate.telemetry.exchange import Exchange

_MAX_ERROR_BODY = 64 * 1024


def api_of(service: CompiledService) -> str | None:
    """``openai``, ``azure`` or ``anthropic``: whose API of files and batches the service
    speaks; None when it has none."""
    adapter = service.adapter
    if adapter is None or service.transport is not None:
        return None
    if isinstance(adapter, AzureAdapter):
        return "azure"
    return adapter.passthrough_dialect


def need(service: CompiledService, apis: tuple[str, ...], path: str) -> str:
    api = api_of(service)
    if api not in apis:
        raise InvalidRequest(
            f"Service '{service.name}' (provider '{service.provider}') does not serve {path}.",
            code="unsupported_endpoint",
        )
    return api


def segment(value: str) -> str:
    """A provider's id as one path segment."""
    return quote(value, safe="")


class Upstream:
    """One service's API of files and batches, for the requests of one client call."""

    def __init__(self, http: Transport, service: CompiledService, ex: Exchange) -> None:
        self.http = http
        self.service = service
        self.ex = ex
        self._request: UpstreamRequest | None = None  # the last one sent, for redaction
        ex.service, ex.provider = service.name, service.provider

    def url(self, base: str, path: str) -> str:
        adapter = self.service.adapter
        if isinstance(adapter, AzureAdapter):
            if adapter.api_version == V1:
                return base + "/v1" + path
            return f"{base}{path}?api-version={quote(adapter.api_version, safe='')}"
        return base + path

    async def open(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
        query: Mapping[str, str] | None = None,
        upload: Upload | None = None,
    ) -> NativeResponse:
        """Send one request; an answer of any status comes back (``check`` it). ``upload``
        is where ``body`` comes from, when it is the client's: its failure is the client's
        fault, not the provider's."""
        service = self.service
        transport = service.transport or self.http
        if not isinstance(transport, HttpTransport):
            raise InvalidRequest(f"Service '{service.name}' has no files or batches API.")
        now = time.monotonic()
        target = service.pool.pick(now, None)
        if target is None:
            raise NoHealthyUpstream(
                f"service '{service.name}': {service.pool.why_unavailable(now)}"
            )
        request = UpstreamRequest(
            method,
            self.url(target.url + service.path, path),
            dict(service.headers),
            body if isinstance(body, bytes) else b"",
            params=dict(query or {}),
        )
        signer = service.signer
        if signer is not None:
            if signer.needs_prepare:
                try:
                    await signer.prepare(self.http)
                except TransportError as exc:
                    raise UpstreamError(
                        f"service '{service.name}' could not obtain credentials: {exc}",
                        code="upstream_auth_failed",
                    ) from None
            signer.sign(request)
        sent = {**(headers or {}), **request.headers}
        self.ex.attempts += 1
        target.inflight += 1
        try:
            response = await transport.open_native(
                request, list(sent.items()), body, service.timeouts, service.tls
            )
        except TransportError as exc:
            if upload is not None and upload.error is not None:
                raise upload.error from None
            target.health.failed(exc.kind, None, time.monotonic())
            if exc.kind == "timeout":
                raise UpstreamTimeout(f"service '{service.name}' timed out: {exc}") from None
            raise UpstreamError(f"service '{service.name}': {exc}") from None
        finally:
            target.inflight -= 1
            self.ex.upstream_seconds += time.monotonic() - now
        target.health.succeeded()
        self._request = request
        return response

    async def check(self, response: NativeResponse) -> None:
        """Raise the provider's error, in the client's shape, for a status of 400 or more."""
        self.ex.status = response.status
        if response.status < 400:
            return
        try:
            body = (await response.read(_MAX_ERROR_BODY))[:_MAX_ERROR_BODY]
        except TransportError:
            body = b""
        service = self.service
        headers = {k.lower(): v for k, v in response.headers.items()}
        cause: GatewayError | None = None
        if response.status < 500 and response.status not in (401, 403) and service.adapter:
            cause = service.adapter.error(response.status, headers, body)
            if service.signer is not None and self._request is not None:
                redact_error(cause, service.signer.secrets(self._request))
        raise Failure("status", service, response.status, cause=cause).error()

    async def json(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] = b"",
        query: Mapping[str, str] | None = None,
        upload: Upload | None = None,
    ) -> dict[str, Any]:
        """A call whose answer is one JSON object."""
        response = await self.open(method, path, headers, body, query, upload)
        await self.check(response)
        try:
            answer = await response.read(self.service.max_answer_bytes)
            document = orjson.loads(answer)
        except (TransportError, orjson.JSONDecodeError) as exc:
            raise UpstreamError(
                f"service '{self.service.name}' sent an answer that could not be read: "
                f"{type(exc).__name__}"
            ) from None
        if not isinstance(document, dict):
            raise UpstreamError(f"service '{self.service.name}' sent no JSON object")
        return document
