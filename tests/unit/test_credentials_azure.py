"""The Entra ID signer: one token fetch shared by concurrent requests, reused until shortly
before expiry, and refusals that never show the secret. The token endpoint is an
in-process transport (no socket), so the clock can be driven by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from sluicegate.config.model import Credentials, Service
from sluicegate.credentials import build_signer
from sluicegate.credentials.azure import AzureEntraCredentials, EntraTokenError
from sluicegate.errors import TimedOut
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.upstream import Timeouts

SECRET = "s3cret-value"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    async def read(self, limit: int | None = None) -> bytes:
        return self.body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def release(self) -> None:
        return None


class TokenEndpoint:
    """Answers token requests like Entra ID, slowly enough for requests to pile up."""

    def __init__(self, expires_in: Any = 3599, status: int = 200, fail: bool = False) -> None:
        self.requests: list[UpstreamRequest] = []
        self.expires_in = expires_in
        self.status = status
        self.fail = fail

    async def open(self, request: UpstreamRequest, timeouts: Timeouts) -> Answer:
        self.requests.append(request)
        await asyncio.sleep(0.01)
        if self.fail:
            raise TimedOut("the upstream did not answer in time")
        if self.status != 200:
            body = {
                "error": "invalid_client",
                "error_description": f"AADSTS7000215: Invalid client secret provided: {SECRET}",
                "error_codes": [7000215],
            }
            return Answer(self.status, orjson.dumps(body))
        token = f"token-{len(self.requests)}"
        body = {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}
        return Answer(200, orjson.dumps(body))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def signer(clock: Clock | None = None, **kwargs: Any) -> AzureEntraCredentials:
    return AzureEntraCredentials("tenant-1", "client-1", SECRET, clock=clock or Clock(), **kwargs)


def request() -> UpstreamRequest:
    return UpstreamRequest("POST", "https://r.openai.azure.com/openai/x", {}, b"{}")


def test_the_token_request_is_the_client_credentials_grant() -> None:
    endpoint = TokenEndpoint()
    creds = signer(authority_host="http://127.0.0.1:9/")
    asyncio.run(creds.prepare(endpoint))
    (sent,) = endpoint.requests
    assert sent.method == "POST"
    assert sent.url == "http://127.0.0.1:9/tenant-1/oauth2/v2.0/token"
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["client-1"],
        "client_secret": [SECRET],
        "scope": ["https://cognitiveservices.azure.com/.default"],
    }
    signed = request()
    creds.sign(signed)
    assert signed.headers == {"authorization": "Bearer token-1"}


def test_concurrent_requests_share_one_fetch() -> None:
    endpoint = TokenEndpoint()
    creds = signer()

    async def many() -> None:
        await asyncio.gather(*(creds.prepare(endpoint) for _ in range(20)))

    asyncio.run(many())
    assert len(endpoint.requests) == 1


def test_the_token_is_reused_until_five_minutes_before_expiry() -> None:
    endpoint = TokenEndpoint(expires_in=3600)
    clock = Clock()
    creds = signer(clock)
    asyncio.run(creds.prepare(endpoint))
    clock.now += 3600 - 301
    asyncio.run(creds.prepare(endpoint))
    assert len(endpoint.requests) == 1
    clock.now += 2
    asyncio.run(creds.prepare(endpoint))
    assert len(endpoint.requests) == 2
    signed = request()
    creds.sign(signed)
    assert signed.headers["authorization"] == "Bearer token-2"


def test_a_short_lived_token_is_refreshed_at_half_its_life() -> None:
    endpoint = TokenEndpoint(expires_in="120")  # older endpoints send a string
    clock = Clock()
    creds = signer(clock)
    asyncio.run(creds.prepare(endpoint))
    clock.now += 59
    asyncio.run(creds.prepare(endpoint))
    assert len(endpoint.requests) == 1
    clock.now += 2
    asyncio.run(creds.prepare(endpoint))
    assert len(endpoint.requests) == 2


def test_a_refusal_is_a_transport_error_without_the_secret() -> None:
    creds = signer()
    with pytest.raises(EntraTokenError) as info:
        asyncio.run(creds.prepare(TokenEndpoint(status=401)))
    text = str(info.value)
    assert info.value.kind == "auth"  # not retried: 502 upstream_auth_failed
    assert SECRET not in text
    assert "invalid_client" in text and "AADSTS7000215" in text and "client-1" in text
    assert SECRET not in repr(creds)


def test_a_token_endpoint_timeout_is_a_timeout() -> None:
    with pytest.raises(TimedOut):
        asyncio.run(signer().prepare(TokenEndpoint(fail=True)))


def test_an_answer_without_a_token_is_refused() -> None:
    class Empty(TokenEndpoint):
        async def open(self, request: UpstreamRequest, timeouts: Timeouts) -> Answer:
            return Answer(200, b"<html>sign in</html>")

    with pytest.raises(EntraTokenError):
        asyncio.run(signer().prepare(Empty()))


def test_build_signer_makes_an_entra_signer_with_an_extra_header() -> None:
    creds = Credentials(
        azure_tenant_id="t",
        azure_client_id="c",
        azure_client_secret=SECRET,
        azure_authority_host="https://login.microsoftonline.us",
        header_name="ocp-apim-subscription-key",
        header_value="apim",
    )
    warnings: list[str] = []
    built = build_signer(creds, Service(name="s", provider="azure", host="h"), "x", warnings)
    assert isinstance(built, AzureEntraCredentials)
    assert built.needs_prepare and not warnings
    assert built.token_url == "https://login.microsoftonline.us/t/oauth2/v2.0/token"
    signed = request()
    built.sign(signed)
    assert signed.headers == {"ocp-apim-subscription-key": "apim"}  # no token fetched yet


def test_empty_credentials_load_with_a_warning() -> None:
    # An unset ${VAR} leaves "": the config loads, the token request will be refused.
    creds = Credentials(azure_tenant_id="", azure_client_id="", azure_client_secret="")
    warnings: list[str] = []
    built = build_signer(creds, Service(name="s", provider="azure", host="h"), "x", warnings)
    assert isinstance(built, AzureEntraCredentials)
    assert warnings and "empty" in warnings[0]
    with pytest.raises(EntraTokenError) as info:
        asyncio.run(built.prepare(TokenEndpoint(status=400)))
    assert "***" not in str(info.value)
