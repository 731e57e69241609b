"""``/mcp`` and ``/mcp/{server}``: the gateway's MCP endpoint (streamable HTTP transport).

A POST carries one JSON-RPC message. ``initialize`` opens a client session (its id in
``Mcp-Session-Id``); every later message names it. A request is answered with JSON,
or with an SSE stream when a server sends something before its response (progress,
a sampling request). DELETE ends the session and its server sessions; GET opens the
stream of what the servers send outside any request (``listen``).

Protocol faults are answered in JSON-RPC's shape (what MCP clients read); the caller's
key or token is checked first, and its failures have the gateway's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import orjson

from sluicegate.asgi import JSON, Receive, Scope, Send, read_body, respond, respond_error
from sluicegate.asgi import Message as AsgiMessage
from sluicegate.errors import AuthenticationError, GatewayError, NotFound, PermissionDenied
from sluicegate.mcp.context import Call
from sluicegate.mcp.discovery import CONTENT, challenge, metadata, mounted, resource_of
from sluicegate.mcp.dispatch import Dispatcher, unavailable
from sluicegate.mcp.hub import Hub
from sluicegate.mcp.listen import listen
from sluicegate.mcp.servers import Servers
from sluicegate.mcp.sessions import McpSession, Sessions, SessionsUnavailable, new_id
from sluicegate.mcp.table import McpTable
from sluicegate.mcp.telemetry import McpMetrics
from sluicegate.mcp.upstream import ServerDown
from sluicegate.mcp.wire import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    VERSIONS,
    Message,
    error,
    is_response,
    sse_event,
)
from sluicegate.proxy.handler import read_headers
from sluicegate.routing.table import RoutingTable, hash_key
from sluicegate.workers import run_path

if TYPE_CHECKING:
    from sluicegate.config.model import Config
    from sluicegate.proxy.handler import Proxy

log = logging.getLogger("sluicegate.mcp")

_SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_ALLOW = (b"allow", b"GET, POST, DELETE")


def mcp_path(path: str) -> bool:
    return path == "/mcp" or path.startswith("/mcp/")


class McpRoom:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.runtime = proxy.runtime
        self.metrics = McpMetrics(self.runtime.metrics)
        self.hubs: dict[str, Hub] = {}  # by gateway: each serves its own servers only
        self._configs: dict[str, Config] = {}  # the runtime's, when the hubs were last pruned
        self._sessions: Sessions | None = None
        self._stopping: asyncio.Event | None = None  # set: GET streams end (shutdown)

    def hub(self, gateway: str) -> tuple[Hub, McpTable]:
        """A gateway's hub and its compiled servers and allow lists (``NotFound``: the
        gateway is gone)."""
        configs = self.runtime.configs
        if configs is not self._configs:
            self._configs = configs
            for name in [n for n in self.hubs if n not in configs]:  # a gateway deleted
                gone = self.hubs.pop(name)
                asyncio.get_running_loop().create_task(gone.close())
        config = configs.get(gateway)
        if config is None:
            raise NotFound(f"No gateway named '{gateway}'.", code="gateway_not_found")
        found = self.hubs.get(gateway)
        if found is None:
            prefix = "" if gateway == self.runtime.gateway else f"gateway '{gateway}': "
            found = self.hubs[gateway] = Hub(
                gateway,
                self.metrics,
                lambda: self.runtime.audit,
                lambda: self.proxy.limiter(self.runtime.table),
                prefix,
            )
        return found, found.table(config)

    def _store(self) -> Sessions:
        if self._sessions is None:
            settings = self.runtime.file.config.gateway
            shared = run_path("mcp-sessions.db")  # serve --workers N: one file for all
            self._sessions = Sessions(settings.redis, settings.mcp_session_ttl, shared)
        return self._sessions

    def status(self, gateway: str | None = None) -> list[dict[str, object]]:
        """A gateway's servers (the default one's unless named) as the dashboard shows them;
        compiled first, so that a server added a moment ago is shown before its first use."""
        hub, _ = self.hub(gateway or self.runtime.gateway)
        return hub.servers.status()

    def stop_listening(self) -> None:
        """The server is stopping: GET streams end now (clients open them again, on another
        instance), so that they do not hold the shutdown up."""
        self._stop().set()

    def _stop(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    async def close(self) -> None:
        for hub in self.hubs.values():
            await hub.close()
        if self._sessions is not None:
            await self._sessions.close()

    async def discovery(self, scope: Scope, send: Send, table: RoutingTable) -> bool:
        """``/.well-known/oauth-protected-resource[/gw/<name>][/mcp…]`` with the gateway's
        ``auth.jwt`` on: RFC 9728 metadata. False: not such a request (the caller answers
        it)."""
        found = resource_of(scope["path"])
        if found is None or scope["method"] not in ("GET", "HEAD"):
            return False
        named, resource = found
        config = self.runtime.configs.get(named or table.gateway)
        jwt = config.auth.jwt if config is not None else None
        if jwt is None:
            return False
        await respond(send, 200, metadata(scope, jwt, resource), list(CONTENT))
        return True

    async def handle(self, scope: Scope, receive: Receive, send: Send, table: RoutingTable) -> None:
        try:
            await self._handle(scope, receive, send, table)
        except SessionsUnavailable as exc:
            # Nothing is sent before a session is read or written, so the answer is whole.
            log.warning("MCP sessions are out of reach (%s); answered 503", exc)
            refused = error(None, INTERNAL_ERROR, "Sessions are out of reach; try again shortly.")
            await _json(send, 503, refused, [(b"retry-after", b"1")])

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, table: RoutingTable
    ) -> None:
        path: str = scope["path"]
        server = path[5:].strip("/") or None
        incoming = read_headers(scope["headers"])
        send = _tagged(send, incoming.request_id)
        try:
            consumer = await self.proxy.identify(table, incoming.key, scope)
            hub, mcp = self.hub(table.gateway)
            if server is not None and server not in mcp.servers:
                raise NotFound(f"No MCP server named '{server}'.", code="mcp_server_not_found")
            allow = mcp.allow(consumer.name, consumer.mcp)
            if server is not None and not allow.server(server):
                raise PermissionDenied(f"MCP server '{server}' is not allowed for this key.")
        except GatewayError as exc:
            config = self.runtime.configs.get(table.gateway)
            jwt = config.auth.jwt if config is not None else None
            told = isinstance(exc, AuthenticationError) and jwt is not None
            told_where = [challenge(scope, mounted(scope, table.gateway))] if told else []
            await respond_error(send, exc, told_where)
            return
        key_id = hash_key(incoming.key, table.key_secret).hex()[:16] if incoming.key else ""
        method = scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            await respond(send, 405, b"", [_ALLOW])
            return
        sessions = self._store()
        dispatcher = hub.dispatcher(sessions)
        given = _header(scope, b"mcp-session-id")
        if method == "POST":
            try:
                body = await read_body(
                    receive, table.max_body_bytes, incoming.content_length, table.body_timeout
                )
            except GatewayError as exc:
                await respond_error(send, exc, [])
                return
            try:
                message = orjson.loads(body)
            except orjson.JSONDecodeError:
                await _json(send, 400, error(None, PARSE_ERROR, "Parse error"))
                return
            if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                refused = error(None, INVALID_REQUEST, "One JSON-RPC 2.0 message per request")
                await _json(send, 400, refused)
                return
            params = message.get("params")
            if params is not None and not isinstance(params, dict):
                refused = error(message.get("id"), INVALID_PARAMS, "params must be an object")
                await _json(send, 400, refused)
                return
            if message.get("method") == "initialize":
                session = McpSession(
                    new_id(),
                    table.gateway,
                    consumer.name,
                    server,
                    dispatcher.version_for((params or {}).get("protocolVersion")),
                    _params(message),
                )
                call = Call(session, mcp, allow, incoming.request_id, consumer.prefix, key_id)
                await self._initialize(send, call, message, sessions, dispatcher)
                return
        version = _header(scope, b"mcp-protocol-version")
        if version is not None and version not in VERSIONS and version != "2024-11-05":
            refused = error(None, INVALID_REQUEST, f"Unsupported protocol version: {version}")
            await _json(send, 400, refused)
            return
        found = await sessions.get(given) if given else None
        if found is not None and (
            found.consumer != consumer.name
            or found.gateway != table.gateway
            or found.server != server
        ):
            found = None  # another caller's, or another endpoint's: not this one's to use
        if found is None:
            status = 400 if not given else 404
            words = "Missing Mcp-Session-Id" if not given else "Session not found"
            await _json(send, status, error(None, INVALID_REQUEST, words))
            return
        call = Call(found, mcp, allow, incoming.request_id, consumer.prefix, key_id)
        if method == "GET":
            await self._listen(receive, send, call, hub.servers)
            return
        if method == "DELETE":
            await dispatcher.end(call)
            await sessions.drop(found.id)
            await respond(send, 204, b"", [])
            return
        if is_response(message):
            await dispatcher.answer(call, message)
            await respond(send, 202, b"", [])
        elif "id" not in message:
            await dispatcher.notify(call, message)
            await respond(send, 202, b"", [])
        else:
            await self._reply(send, call, message, dispatcher)
        if call.dirty:
            try:
                await sessions.put(call.session)
            except SessionsUnavailable as exc:  # answered already: the next message reopens
                log.warning("MCP session %s not saved (%s)", call.session.id[:8], exc)

    async def _initialize(
        self, send: Send, call: Call, message: Message, sessions: Sessions, dispatcher: Dispatcher
    ) -> None:
        try:
            answer = await dispatcher.initialize(call, message.get("id"))
        except ServerDown as down:
            await _json(send, 200, unavailable(message.get("id"), down))
            return
        await sessions.put(call.session)
        headers = [(b"mcp-session-id", call.session.id.encode())]
        await _json(send, 200, answer, headers)

    async def _listen(self, receive: Receive, send: Send, call: Call, servers: Servers) -> None:
        """The session's GET stream, until the client leaves or the server stops."""
        await send({"type": "http.response.start", "status": 200, "headers": list(_SSE)})
        stream = listen(servers, call)

        async def relay() -> None:
            async for item in stream:
                body = sse_event(item)
                await send({"type": "http.response.body", "body": body, "more_body": True})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = {
            asyncio.create_task(relay()),
            asyncio.create_task(gone()),
            asyncio.create_task(self._stop().wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await stream.aclose()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b""})

    async def _reply(
        self, send: Send, call: Call, message: Message, dispatcher: Dispatcher
    ) -> None:
        reply = dispatcher.request(call, message)
        try:
            first = await anext(reply)
            if is_response(first):
                await _json(send, 200, first)
                return
            await send({"type": "http.response.start", "status": 200, "headers": list(_SSE)})
            await send({"type": "http.response.body", "body": sse_event(first), "more_body": True})
            async for item in reply:
                body = sse_event(item)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            with contextlib.suppress(Exception):
                await reply.aclose()


def _tagged(send: Send, request_id: str) -> Send:
    """``send`` that gives the answer the request id its audit rows carry."""
    rid = (b"x-request-id", request_id.encode())

    async def tagged(message: AsgiMessage) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), rid]
        await send(message)

    return tagged


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _params(message: Message) -> Message:
    params = message.get("params")
    if not isinstance(params, dict):
        return {}
    keep = ("protocolVersion", "capabilities", "clientInfo")
    return {k: params[k] for k in keep if k in params}


async def _json(
    send: Send, status: int, message: Message, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    out: list[tuple[bytes, bytes]] = [JSON, *(headers or [])]
    await respond(send, status, orjson.dumps(message), out)
