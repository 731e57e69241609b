"""A provider of any kind that fails in a chosen way, and token endpoints that do too.

The first two segments of a request's path choose what happens, so one server
serves a gateway with a service per failure: a service's ``path`` is
``/k/<kind>`` (the adapter appends its own URL), an Entra ID authority or a
Google ``token_uri`` is ``/t/<kind>...``.

Provider kinds (``/k/<kind>/...``):

    hang          never answers
    malformed     a status line that is not HTTP, quoting the request's target
    drop          a 200 whose body stops half-way, then the connection closes
    stream-break  a stream's first bytes (half an event), then the connection closes
    400 401 403   that status, the JSON message quoting the URL and the credential received
    500           the same with 500
    404           an HTML "not found" page quoting the URL (as some front ends write one)

Token kinds (``/t/<kind>/...``): ``ok`` (a token is issued: ``azure_token`` or
``google_token``), ``refuse`` (401 whose description quotes the request's
form), ``malformed`` (200 and an HTML page quoting the form), ``garbage`` (a
status line that is not HTTP, quoting the form).

Every provider request needs a credential: a bearer token, an ``api-key``
header, a ``key`` query parameter or an AWS SigV4 signature; one without gets
401. ``credentials`` keeps each one received, to prove that it was there to
leak. The echoes are deliberate: a provider, a proxy in front of it or a
token endpoint may repeat a request's URL and credentials in its error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

_SIGNATURE = "Signature="


class FailingProvider(FakeServer):
    def __init__(self, azure_token: str, google_token: str) -> None:
        super().__init__()
        self.azure_token = azure_token
        self.google_token = google_token
        self.credentials: set[str] = set()  # every credential value received
        self.grants: set[str] = set()  # token requests' secrets: client secrets, assertions
        self.paths: list[str] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/k/{kind}/{tail:.*}", self.provider)
        app.router.add_route("*", "/t/{kind}/{tail:.*}", self.token)

    # ------------------------------------------------------------ providers
    def _credential(self, request: web.Request) -> str | None:
        found = [
            request.headers.get("authorization"),
            request.headers.get("api-key"),
            request.query.get("key"),
            request.headers.get("x-amz-security-token"),
        ]
        authorization = request.headers.get("authorization", "")
        if _SIGNATURE in authorization:  # SigV4: the signature is the signed secret on the wire
            found.append(authorization.rsplit(_SIGNATURE, 1)[1])
        values = [value for value in found if value]
        self.credentials.update(values)
        return values[0] if values else None

    async def provider(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.paths.append(request.path_qs)
        kind = request.match_info["kind"]
        credential = self._credential(request)
        target = request.path_qs
        if credential is None:
            return web.json_response({"error": {"message": "no credential"}}, status=401)
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "malformed":
            return _raw(request, b"HTTP/1.1 2OO " + target.encode() + b"\r\n\r\n")
        if kind == "drop":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096"
            return _raw(request, head + b'\r\n\r\n{"id": "cut')
        if kind == "stream-break":
            # Half an event: an SSE line with no end, or the first bytes of an
            # event-stream frame's prelude (Bedrock).
            binary = "/converse" in request.path
            content_type = "application/vnd.amazon.eventstream" if binary else "text/event-stream"
            response = web.StreamResponse(headers={"Content-Type": content_type})
            await response.prepare(request)
            await response.write(b"\x00\x00\x01\x00\x00" if binary else b'data: {"half an event')
            assert request.transport is not None
            request.transport.close()
            return response
        if kind == "404":
            page = f"<html><body><p>The requested URL <code>{target}</code> was not found.</p>"
            return web.Response(status=404, text=page, content_type="text/html")
        status = int(kind)
        echo = f"refused {request.method} {target} with credential {credential}"
        body = {"error": {"message": echo, "type": "invalid_request_error", "code": credential}}
        return web.json_response(body, status=status)

    # ------------------------------------------------------------ token endpoints
    async def token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.paths.append(request.path_qs)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.grants.update(v for k, v in form.items() if k in ("client_secret", "assertion"))
        kind = request.match_info["kind"]
        echo = raw.decode("utf-8", "replace")
        if kind == "refuse":
            return web.json_response(
                {"error": "invalid_client", "error_description": echo, "error_codes": [7000215]},
                status=401,
            )
        if kind == "malformed":
            return web.Response(text=f"<html>{echo}</html>", content_type="text/html")
        if kind == "garbage":
            return _raw(request, b"HTTP/1.1 2OO " + raw + b"\r\n\r\n")
        google = "assertion" in form
        token = self.google_token if google else self.azure_token
        answer: dict[str, Any] = {"access_token": token, "expires_in": 3599}
        answer["token_type"] = "Bearer"
        return web.Response(body=orjson.dumps(answer), content_type="application/json")


def _raw(request: web.Request, data: bytes) -> web.StreamResponse:
    """Bytes written straight to the socket, then the connection closed."""
    transport = request.transport
    assert transport is not None
    transport.write(data)
    transport.close()
    return web.Response()
