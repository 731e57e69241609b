"""``create_app(runtime)``: the ASGI application (data plane and probes)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal

import orjson

from sluicegate.admin.api import AdminApi
from sluicegate.asgi import (
    JSON,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    bounded_receive,
    respond,
    respond_error,
)
from sluicegate.cors import origin_of
from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.dialects.base import Dialect
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from sluicegate.files.api import ObjectsApi
from sluicegate.gc_tuning import tune_for_serving
from sluicegate.mcp.room import McpRoom, mcp_path
from sluicegate.media.api import MediaApi
from sluicegate.media.base import ENDPOINTS as MEDIA_ENDPOINTS
from sluicegate.proxy.handler import Proxy, read_headers
from sluicegate.proxy.passthrough import NativeProxy
from sluicegate.realtime.relay import Realtime
from sluicegate.responses.api import ResponsesApi
from sluicegate.routing.table import RoutingTable
from sluicegate.runtime import Runtime
from sluicegate.startup import describe_failure
from sluicegate.telemetry.ids import ordered_id
from sluicegate.telemetry.metrics import CONTENT_TYPE
from sluicegate.ui.dashboard import Dashboard

METRICS_TYPE = CONTENT_TYPE.encode()

log = logging.getLogger("sluicegate")

_OPENAI = OpenAIDialect()
_ANTHROPIC = AnthropicDialect()
_POST_ENDPOINTS: dict[str, tuple[str, Dialect]] = {
    "/v1/chat/completions": ("chat", _OPENAI),
    "/v1/completions": ("completions", _OPENAI),
    "/v1/embeddings": ("embeddings", _OPENAI),
    "/chat/completions": ("chat", _OPENAI),
    "/completions": ("completions", _OPENAI),
    "/embeddings": ("embeddings", _OPENAI),
    "/v1/messages": ("chat", _ANTHROPIC),
}
_OK = orjson.dumps({"status": "ok"})


def _model_in(path: str) -> str | None:
    """The model of ``/v1/models/{model}``; it may hold "/" (``org/model`` names)."""
    if not path.startswith(("/v1/models/", "/models/")):
        return None
    return path.partition("/models/")[2] or None


def _native(path: str) -> bool:
    return path.startswith("/passthrough/")


def _responses(path: str) -> bool:
    return path in ("/v1/responses", "/responses") or path.startswith(
        ("/v1/responses/", "/responses/")
    )


def _objects(path: str) -> str | None:
    """The family of a files or batches path: ``files``, ``batches``, ``message_batches``."""
    for prefix, family in _FAMILIES:
        if path == prefix or path.startswith(prefix + "/"):
            return family
    return None


_FAMILIES = (
    ("/v1/files", "files"),
    ("/v1/batches", "batches"),
    ("/v1/messages/batches", "message_batches"),
)


# The requests the proxy answers, with request ids of its own.
_PROXIED = frozenset(
    {("POST", path) for path in _POST_ENDPOINTS}
    | {(method, path) for method in ("GET", "HEAD") for path in ("/v1/models", "/models")}
    | {("POST", "/v1/messages/count_tokens")}
)


def with_request_id(headers: Headers, send: Send) -> Send:
    """``send`` that gives an answer the client's ``x-request-id``, or a new one, unless
    the answer names one already: every answer carries one, errors and probes included."""
    given = next((v for k, v in headers if k == b"x-request-id" and 0 < len(v) <= 200), None)
    rid = given or ordered_id().encode()

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            out = list(message.get("headers", ()))
            if not any(name.lower() == b"x-request-id" for name, _ in out):
                out.append((b"x-request-id", rid))
                message["headers"] = out
        await send(message)

    return tagged


class App:
    def __init__(self, runtime: Runtime, *, tune_gc: bool = False, signals: bool = False) -> None:
        self.runtime = runtime
        self.tune_gc = tune_gc  # `sluicegate serve`: gc_tuning once started (not in tests)
        self.signals = signals  # `sluicegate serve`: SIGHUP reloads the config file
        self._stopping = False
        self.proxy = Proxy(runtime)
        self.native = NativeProxy(self.proxy)
        self.objects = ObjectsApi(self.proxy)
        self.media = MediaApi(self.proxy)
        self.realtime = Realtime(self.proxy)
        self.responses = ResponsesApi(self.proxy)
        self.mcp = McpRoom(self.proxy)
        self.proxy.recorder.audit = runtime.audit
        self.admin = AdminApi(runtime, self.proxy.route_embedder)
        self.ui = Dashboard(runtime, self.admin)
        self.admin.mcp_status = self.mcp.status

    @property
    def header_timeout(self) -> float:
        """Read by the server's protocol (sluicegate.http_protocol) for each connection."""
        return self.runtime.table.header_timeout

    def begin_drain(self) -> None:
        """The server is stopping (sluicegate.http_protocol): streams have the drain time."""
        self._announce_stop()
        self.proxy.drain.begin()
        self.mcp.stop_listening()

    def _announce_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            log.info(
                "stopping: no new connections; draining the requests in flight (up to %gs, "
                "gateway.drain_timeout)",
                self.proxy.drain.seconds,
            )

    def _watch_signals(self) -> None:
        loop = asyncio.get_running_loop()

        async def reload() -> None:
            log.info("SIGHUP: reloading %s", self.runtime.config_path)
            await self.runtime.reload_file()  # logs "reloaded", or why the edit was refused

        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
            log.warning("SIGHUP cannot be handled here; the config file is still watched")

    @property
    def head_limits(self) -> tuple[int, int]:
        """The request head's most bytes and fields, read as header_timeout is."""
        table = self.runtime.table
        return table.max_header_bytes, table.max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    def _gateway(self, scope: Scope) -> RoutingTable | None:
        """The table of the gateway a request is for: ``/gw/<name>/…``, its ``Host``, or the
        default gateway. ``None``: the path names a gateway that does not exist."""
        path: str = scope["path"]
        if path.startswith("/gw/"):
            name, _, rest = path[4:].partition("/")
            table = self.runtime.tables.get(name)
            if table is not None:
                scope["path"] = "/" + rest
            return table
        hosts = self.runtime.hosts
        if hosts:
            for header, value in scope["headers"]:
                if header == b"host":
                    return hosts.select(value) or self.runtime.table
        return self.runtime.table

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        table = self._gateway(scope)
        path: str = scope["path"]
        proxied = (method, path) in _PROXIED or _model_in(path) is not None
        if not (
            proxied
            or _native(path)
            or _objects(path)
            or _responses(path)
            or path in MEDIA_ENDPOINTS
            or mcp_path(path)
        ):
            send = with_request_id(scope["headers"], send)  # the proxy sets its own
        if table is None:
            name = path[4:].partition("/")[0]
            missing = NotFound(f"No gateway named '{name}'.", code="gateway_not_found")
            await respond_error(send, missing, [])
            return
        if table.cors is not None and not path.startswith(("/admin", "/ui")):
            origin, preflight = origin_of(scope["headers"])
            if origin is not None:
                if not table.cors.allows(origin):
                    if preflight:  # the browser refuses the call without our headers
                        await respond(send, 204, b"", [])
                        return
                elif preflight and method == "OPTIONS":
                    await respond(send, 204, b"", table.cors.preflight(origin))
                    return
                else:
                    send = table.cors.wrap(send, origin)
        route = _POST_ENDPOINTS.get(path)
        if route is not None:
            if method == "POST":
                await self.proxy.handle(scope, receive, send, *route, table)
                return
            await respond_error(
                send, MethodNotAllowed(f"Use POST for {path}."), [(b"allow", b"POST")]
            )
            return
        media = MEDIA_ENDPOINTS.get(path)
        if media is not None:
            if method == "POST":
                await self.media.handle(scope, receive, send, table, media)
                return
            await respond_error(
                send, MethodNotAllowed(f"Use POST for {path}."), [(b"allow", b"POST")]
            )
            return
        if _native(path):
            await self.native.handle(scope, receive, send, table)
            return
        if _responses(path):
            await self.responses.handle(scope, receive, send, table)
            return
        if mcp_path(path):
            await self.mcp.handle(scope, receive, send, table)
            return
        if path.startswith("/.well-known/") and await self.mcp.discovery(scope, send, table):
            return
        family = _objects(path)
        if family is not None:
            await self.objects.handle(scope, receive, send, table, family)
            return
        if path == "/admin" or path.startswith("/admin/"):
            await self.admin(scope, self._bounded(scope, receive, table), send)
            return
        if path == "/ui" or path.startswith("/ui/"):
            await self.ui(scope, self._bounded(scope, receive, table), send)
            return
        if path == "/v1/messages/count_tokens" and method == "POST":
            await self.proxy.count_tokens(scope, receive, send, _ANTHROPIC, table)
            return
        if method in ("GET", "HEAD"):
            if path in ("/v1/models", "/models"):
                await self.proxy.models(scope, receive, send, table)
                return
            model = _model_in(path)
            if model is not None:
                await self.proxy.models(scope, receive, send, table, model)
                return
            if path == "/metrics":
                if not self._may_scrape(scope):
                    refused = AuthenticationError("The metrics key is missing or wrong.")
                    await respond_error(send, refused, [])
                    return
                await respond(
                    send, 200, self.runtime.metrics.render(), [(b"content-type", METRICS_TYPE)]
                )
                return
            if path == "/healthz":
                await respond(send, 200, _OK, [JSON])
                return
            if path == "/readyz":
                ready = self.runtime.ready
                body = _OK if ready else orjson.dumps({"status": "starting"})
                await respond(send, 200 if ready else 503, body, [JSON])
                return
        if path.startswith("/v1/") and self.native.routes(table, path):
            await self.native.handle(scope, receive, send, table, routed=True)
            return
        error: GatewayError = NotFound(f"Unknown path {method} {path}.", code="unknown_path")
        if path.startswith("/v1/") and method not in ("GET", "HEAD", "POST"):
            error = InvalidRequest(f"Method {method} is not supported on {path}.")
        await respond_error(send, error, [])

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        table = self._gateway(scope)
        path: str = scope["path"]
        if table is not None and path in ("/v1/realtime", "/realtime"):
            await self.realtime.handle(scope, receive, send, table)
            return
        await receive()  # websocket.connect
        error = NotFound(f"No WebSocket endpoint at {path}.", code="unknown_path")
        body = error.body("openai")
        headers = [JSON, (b"content-length", str(len(body)).encode())]
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})

    @staticmethod
    def _bounded(scope: Scope, receive: Receive, table: RoutingTable) -> Receive:
        """The control plane's apps read bodies through Starlette: the data plane's size
        and time limits hold for them too, applied here once for both."""
        declared = read_headers(scope["headers"]).content_length
        return bounded_receive(receive, table.max_body_bytes, declared, table.body_timeout)

    def _may_scrape(self, scope: Scope) -> bool:
        wanted = self.runtime.file.config.gateway.metrics_key
        if wanted is None:
            return True
        given = read_headers(scope["headers"]).key or ""
        return hmac.compare_digest(given.encode(), wanted.encode())

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as exc:  # report, do not crash the server with a traceback
                    log.error("start-up failed: %s", describe_failure(exc))
                    await send({"type": "lifespan.startup.failed", "message": ""})
                    return
                if self.signals and self.runtime.config_path is not None:
                    self._watch_signals()
                self.ui.start()
                if self.tune_gc:
                    tune_for_serving()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._announce_stop()
                await self.ui.close()
                await self.responses.close()
                await self.mcp.close()
                await self.proxy.close()
                await self.realtime.sessions.close()
                await self.runtime.close()
                audited = ", the audit log written" if self.runtime.audit is not None else ""
                log.info("stopped: drained, every request has finished%s", audited)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(runtime: Runtime, *, tune_gc: bool = False, signals: bool = False) -> App:
    return App(runtime, tune_gc=tune_gc, signals=signals)
