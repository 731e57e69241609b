"""OAuth 2.0 client credentials for an MCP server (RFC 6749, section 4.4): a token from the
server's authorization server, kept until shortly before it expires."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from urllib.parse import quote_plus

import aiohttp
import orjson

from sluicegate.mcp.upstream import ServerDown

EARLY = 60.0  # a token is fetched anew this long before it expires
DEFAULT_LIFETIME = 300.0  # when the answer gives no expires_in


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None


class Tokens:
    def __init__(self, server: str, grant: ClientCredentials) -> None:
        self.server = server
        self.grant = grant
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """The server refused the token (401): the next request gets a new one."""
        self._token, self._until = None, 0.0

    async def header(self, http: aiohttp.ClientSession, timeout: float) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._until:
            async with self._lock:
                if self._token is None or time.monotonic() >= self._until:
                    await self._fetch(http, timeout)
        return {"authorization": f"Bearer {self._token}"}

    async def _fetch(self, http: aiohttp.ClientSession, timeout: float) -> None:
        form = {"grant_type": "client_credentials"}
        if self.grant.scope:
            form["scope"] = self.grant.scope
        if self.grant.audience:
            form["audience"] = self.grant.audience
        # RFC 6749 2.3.1: each part form-encoded, then HTTP Basic.
        pair = f"{quote_plus(self.grant.client_id)}:{quote_plus(self.grant.client_secret)}"
        headers = {"authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        try:
            async with (
                asyncio.timeout(timeout),
                http.post(self.grant.token_url, data=form, headers=headers) as response,
            ):
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            raise ServerDown(self.server, "could not get an OAuth token (token URL)") from None
        if status != 200:
            # The answer may quote the secret's owner; only the status is told.
            raise ServerDown(self.server, f"could not get an OAuth token (HTTP {status})")
        try:
            found = orjson.loads(body)
            token = found["access_token"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ServerDown(self.server, "got no access_token from its token URL") from None
        lifetime = found.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME
        self._token = str(token)
        self._until = time.monotonic() + max(seconds - EARLY, seconds / 2)
