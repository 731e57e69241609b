"""Azure Entra ID: a client-credentials token, fetched once, reused until shortly before expiry.

``prepare`` exchanges the service principal's secret for an access token at
``{authority}/{tenant}/oauth2/v2.0/token`` (scope Cognitive Services) through
the gateway's own HTTP client; concurrent requests wait for the one fetch in
flight instead of starting their own. ``sign`` sends the token as a bearer.
A refused or unreadable token answer raises ``EntraTokenError`` (a transport
error), so the request fails as a 502 naming the service. It repeats nothing
Entra ID said beyond its error codes, so the secret never appears in a message
or a repr, even from an endpoint that quotes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import orjson

from sluicegate.credentials.redact import error_code
from sluicegate.errors import CredentialsRefused
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.upstream import Timeouts

if TYPE_CHECKING:
    from sluicegate.config.model import Credentials
    from sluicegate.proxy.upstream import Transport

AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://cognitiveservices.azure.com/.default"
# Refresh this long before expiry, so a token never dies in the middle of a request.
REFRESH_MARGIN = 300.0
_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=30.0)


class EntraTokenError(CredentialsRefused):
    """Entra ID did not issue a token."""


class AzureEntraCredentials:
    needs_prepare = True
    signs_body = False

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        authority_host: str | None = None,
        header: tuple[str, str] | None = None,
        scope: str = SCOPE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._secret = client_secret
        self.authority_host = (authority_host or AUTHORITY).rstrip("/")
        # An extra static header, e.g. an API Management subscription key in front of Azure.
        self.header = header
        self.scope = scope
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    @classmethod
    def from_credentials(cls, creds: Credentials) -> AzureEntraCredentials:
        # Empty values (an unset ${VAR}) load; Entra ID refuses them at the first request.
        header = (creds.header_name, creds.header_value or "") if creds.header_name else None
        return cls(
            creds.azure_tenant_id or "",
            creds.azure_client_id or "",
            creds.azure_client_secret or "",
            authority_host=creds.azure_authority_host,
            header=header,
        )

    @property
    def token_url(self) -> str:
        return f"{self.authority_host}/{quote(self.tenant_id, safe='')}/oauth2/v2.0/token"

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def prepare(self, http: Transport) -> None:
        if self._fresh():
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._fresh():  # another request may have fetched it while we waited
                await self._fetch(http)

    async def _fetch(self, http: Transport) -> None:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._secret,
                "scope": self.scope,
            }
        )
        request = UpstreamRequest(
            "POST",
            self.token_url,
            {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            form.encode(),
        )
        self.fetches += 1
        started = self._clock()
        response = await http.open(request, _TIMEOUTS)
        body = await response.read()
        data = _json_object(body)
        token = data.get("access_token")
        if response.status != 200 or not isinstance(token, str) or not token:
            raise EntraTokenError(self._refusal(response.status, data))
        lifetime = _seconds(data.get("expires_in"))
        self._token = token
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 2)

    def _refusal(self, status: int, data: dict[str, Any]) -> str:
        # Entra's error codes (e.g. "invalid_client", AADSTS7000215) say what is wrong;
        # its descriptions, and anything not shaped like a code, are not repeated.
        code = error_code(data.get("error"))
        codes = data.get("error_codes")
        what = (
            f"Entra ID gave no token for the client credentials of {self.client_id} (status 200"
            if status == 200
            else f"Entra ID refused the client credentials of {self.client_id} (status {status}"
        )
        if code is not None:
            what += f", {code}"
        numbers = [str(c) for c in (codes if isinstance(codes, list) else [])[:3] if _int(c)]
        if numbers:
            what += ", AADSTS" + ",".join(numbers)
        return what + ")"

    def sign(self, request: UpstreamRequest) -> None:
        if self._token is not None:
            request.headers["authorization"] = f"Bearer {self._token}"
        if self.header is not None:
            request.headers[self.header[0]] = self.header[1]

    def secrets(self, request: UpstreamRequest) -> list[str]:
        header = self.header[1] if self.header is not None else ""
        return [self._secret, self._token or "", header]

    def __repr__(self) -> str:
        return (
            f"AzureEntraCredentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
            f"authority_host={self.authority_host!r})"
        )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _seconds(value: Any) -> float:
    # v2.0 endpoints send a number; older ones sent it as a string.
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
