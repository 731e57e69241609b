"""Google service-account credentials: an OAuth access token for Vertex AI.

google-auth signs the JWT grant and parses the token endpoint's answer; its
refresh is blocking, so it runs in a worker thread, and the one HTTP call it
makes goes back to the event loop through the gateway's own ``Transport``
(so the token fetch obeys the same client, pool and timeouts). The token is
reused until five minutes before it expires. The key's ``token_uri`` says
where tokens come from, which is how tests point it at a fake endpoint.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING, Any

import orjson
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_transport
from google.oauth2 import service_account

from sluicegate.credentials.redact import error_code
from sluicegate.errors import ConnectFailed, CredentialsRefused, TransportError
from sluicegate.providers.base import UpstreamRequest
from sluicegate.proxy.upstream import Timeouts

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import Transport

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = datetime.timedelta(minutes=5)
_TOKEN_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=30.0)


class _Response(google_transport.Response):
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class _LoopRequest(google_transport.Request):
    """google-auth's blocking HTTP callable, answered by the event loop's Transport."""

    def __init__(self, http: Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self.loop = loop

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        data = body.encode() if isinstance(body, str) else (body or b"")
        request = UpstreamRequest(method, url, dict(headers or {}), data)
        future = asyncio.run_coroutine_threadsafe(self._send(request), self.loop)
        try:
            return future.result()
        except TransportError as exc:
            # Kept as the cause: ``prepare`` raises it again, whatever google-auth made of it.
            raise google_exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]

    async def _send(self, request: UpstreamRequest) -> _Response:
        response = await self.http.open(request, _TOKEN_TIMEOUTS)
        data = await response.read()
        return _Response(response.status, dict(response.headers), data)


class GoogleServiceAccount:
    """Signs requests with ``Authorization: Bearer <access token>``."""

    needs_prepare = True
    signs_body = False

    def __init__(self, info: dict[str, Any]) -> None:
        self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        self.client_email = str(info.get("client_email", ""))
        self._lock = asyncio.Lock()

    @classmethod
    def from_json(cls, text: str) -> GoogleServiceAccount:
        """Raises ``ValueError`` naming what is wrong, never showing the key."""
        try:
            info = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValueError("is not JSON (paste the service account key file's text)") from None
        if not isinstance(info, dict) or info.get("type", "service_account") != "service_account":
            raise ValueError("is not a service account key")
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        try:
            return cls(info)
        except (ValueError, TypeError, IndexError):
            raise ValueError("has a private_key that cannot be read") from None

    def _fresh(self) -> bool:
        token = self._credentials.token
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        if not token or expiry is None:
            return False
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        return bool(expiry - now > REFRESH_MARGIN)

    async def prepare(self, http: Transport) -> None:
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # another request refreshed it while this one waited
                return
            request = _LoopRequest(http, asyncio.get_running_loop())
            try:
                await asyncio.to_thread(self._credentials.refresh, request)
            except google_exceptions.RefreshError as exc:
                raise CredentialsRefused(self._refusal(exc)) from None
            except google_exceptions.TransportError as exc:
                cause = exc.__cause__
                if isinstance(cause, TransportError):  # its text is a fixed phrase
                    raise type(cause)(f"no access token could be fetched: {cause}") from None
                raise ConnectFailed("no access token could be fetched") from None
            except Exception:
                # google-auth's texts quote the token endpoint's answer, which may quote the
                # grant; an answer it could not read at all raises whatever its parsing did.
                raise ConnectFailed("the token endpoint's answer could not be read") from None

    def _refusal(self, exc: google_exceptions.RefreshError) -> str:
        data = exc.args[1] if len(exc.args) > 1 else None
        code = error_code(data.get("error")) if isinstance(data, dict) else None
        if code is None:
            return f"the token endpoint gave no token for service account {self.client_email}"
        return f"the token endpoint refused service account {self.client_email} ({code})"

    def sign(self, request: UpstreamRequest) -> None:
        request.headers["authorization"] = f"Bearer {self._credentials.token}"

    def secrets(self, request: UpstreamRequest) -> list[str]:
        return [str(self._credentials.token or "")]

    def __repr__(self) -> str:
        return f"GoogleServiceAccount(client_email={self.client_email!r})"
