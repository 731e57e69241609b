"""One client message on ``/mcp`` or ``/mcp/{server}``: answered here, or relayed.

A request's reply is a stream of messages, the response last: what a server sends on
the way (progress, its own requests for sampling or elicitation) is relayed to the
client as it comes. On the aggregated endpoint a server's request carries an id that
names the server (``wire.relay_id``), so the client's answer finds its way back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

from sluicegate import __version__
from sluicegate.errors import ContentBlocked, RateLimited
from sluicegate.guardrails.scanner import Screening
from sluicegate.mcp.aggregate import LISTS, Aggregator
from sluicegate.mcp.context import Call
from sluicegate.mcp.policy import screen_arguments, screen_result
from sluicegate.mcp.relay import Relay
from sluicegate.mcp.telemetry import CallRecord, McpMetrics
from sluicegate.mcp.upstream import ServerDown
from sluicegate.mcp.wire import (
    BLOCKED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    LATEST,
    METHOD_NOT_FOUND,
    RATE_LIMITED,
    RELAYED_NOTIFICATIONS,
    REQUESTS,
    SERVER_UNAVAILABLE,
    VERSIONS,
    Message,
    cursor,
    error,
    is_response,
    offset_of,
    relay_id,
    result,
    split_name,
    unrelay_id,
)
from sluicegate.policies.rate_limit import Estimate, RateLimiter, Who
from sluicegate.telemetry.audit import AuditWriter

Reply = AsyncGenerator[Message, None]

# What the aggregated endpoint offers whatever its servers do.
_CAPABILITIES = {
    "tools": {"listChanged": True},
    "prompts": {"listChanged": True},
    "resources": {"listChanged": True},
    "logging": {},
    "completions": {},
}


# A server's failure as the outcome of the audit row's step (telemetry.attempts).
_STEPS = {"timeout": "timeout", "status": "invalid", "down": "connect"}
_DOWN = (502, "unavailable", "upstream_error")
# JSON-RPC errors that say the client's message was wrong; any other is the server's.
_CLIENT_CODES = frozenset({INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS})


def _rpc_error_type(item: Message) -> str:
    found = item.get("error")
    code = found.get("code") if isinstance(found, dict) else None
    return "invalid_request_error" if code in _CLIENT_CODES else "upstream_error"


async def one(message: Message) -> Reply:
    yield message


def params_cursor(message: Message) -> Any:
    params = message.get("params")
    return params.get("cursor") if isinstance(params, dict) else None


def unavailable(request_id: Any, down: ServerDown) -> Message:
    return error(request_id, SERVER_UNAVAILABLE, str(down), {"server": down.server})


class Dispatcher:
    def __init__(
        self,
        relay: Relay,
        metrics: McpMetrics,
        audit: Callable[[], AuditWriter | None],
        limiter: Callable[[], RateLimiter],
        page_size: int = 100,
    ) -> None:
        self.limiter = limiter
        self.relay = relay
        self.metrics = metrics
        self.audit = audit
        self.lists = Aggregator(relay, metrics, page_size)
        self.page_size = page_size

    # -- the handshake ---------------------------------------------------------------

    async def initialize(self, call: Call, request_id: Any) -> Message:
        session = call.session
        if session.server is not None:
            opened = await self.relay.open(call, session.server)
            session.version = opened.version
            return result(request_id, {**opened.result, "protocolVersion": opened.version})
        await self.lists.initialize(call)
        return result(
            request_id,
            {
                "protocolVersion": session.version,
                "capabilities": _CAPABILITIES,
                "serverInfo": {"name": "sluicegate", "version": __version__},
                "instructions": "Tools and prompts of each server are named "
                "{server}__{name}; resources keep their URIs.",
            },
        )

    @staticmethod
    def version_for(asked: Any) -> str:
        return asked if asked in VERSIONS else LATEST

    # -- requests --------------------------------------------------------------------

    def request(self, call: Call, message: Message) -> Reply:
        method = message.get("method")
        rid = message.get("id")
        if method == "ping":
            return one(result(rid, {}))
        if method == "tools/call":
            return self.call_tool(call, message)
        if not call.aggregated:
            server = call.session.server
            assert server is not None
            if method not in REQUESTS:
                return one(error(rid, METHOD_NOT_FOUND, f"Method not found: {method}"))
            if method == "tools/list":
                return self._filtered_tools(call, server, message)
            return self._relayed(call, server, message)
        if method in LISTS:
            return self._listed(call, message)
        if method == "prompts/get":
            return self._named(call, message, "name")
        if method == "resources/read" or method in ("resources/subscribe", "resources/unsubscribe"):
            return self._by_uri(call, message)
        if method == "completion/complete":
            return self._completion(call, message)
        if method == "logging/setLevel":
            return self._everywhere(call, message)
        return one(error(rid, METHOD_NOT_FOUND, f"Method not found: {method}"))

    async def _relayed(
        self, call: Call, server: str, message: Message, rename: bool = False
    ) -> Reply:
        rid = message.get("id")
        try:
            async for item in self.relay.ask(call, server, message):
                if rename and "method" in item and "id" in item:
                    item = {**item, "id": relay_id(server, item["id"])}
                yield item
        except ServerDown as down:
            yield unavailable(rid, down)

    async def _filtered_tools(self, call: Call, server: str, message: Message) -> Reply:
        spec = call.table.servers[server]
        async for item in self._relayed(call, server, message):
            found = item.get("result") if is_response(item) else None
            if isinstance(found, dict) and isinstance(found.get("tools"), list):
                whole = not found.get("nextCursor") and not params_cursor(message)
                names = [str(t.get("name")) for t in found["tools"] if isinstance(t, dict)]
                self.relay.servers.listed(server, names, whole)
                tools = [
                    t
                    for t in found["tools"]
                    if isinstance(t, dict)
                    and spec.offers(str(t.get("name")))
                    and call.allow.tool(server, str(t.get("name")))
                ]
                item = {**item, "result": {**found, "tools": tools}}
            yield item

    async def _listed(self, call: Call, message: Message) -> Reply:
        rid = message.get("id")
        method = str(message.get("method"))
        params = message.get("params") or {}
        start = 0
        if isinstance(params, dict) and params.get("cursor") is not None:
            found = offset_of(params["cursor"])
            if found is None:
                yield error(rid, INVALID_PARAMS, "Invalid cursor")
                return
            start = found
        key = LISTS[method]
        items = self.lists.named(call, key, await self.lists.collect(call, method))
        page: Message = {key: items[start : start + self.page_size]}
        if start + self.page_size < len(items):
            page["nextCursor"] = cursor(start + self.page_size)
        yield result(rid, page)

    def _refused_tool(self, rid: Any, name: Any) -> Message:
        return error(rid, INVALID_PARAMS, f"Unknown tool: {name}")

    async def call_tool(self, call: Call, message: Message) -> Reply:
        rid = message.get("id")
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str) or not isinstance(params, dict):
            yield error(rid, INVALID_PARAMS, "tools/call needs params.name")
            return
        server: str | None
        tool = name
        if call.aggregated:
            parts = split_name(name)
            server, tool = parts if parts is not None else (None, name)
        else:
            server = call.session.server
        spec = call.table.servers.get(server) if server is not None else None
        record = CallRecord(
            call.request_id,
            call.session.gateway,
            call.consumer,
            call.key_prefix,
            server or "",
            tool,
            self.relay.servers.label_for(server or "", tool),
            spec.where if spec is not None else None,
        )
        if (
            spec is None
            or server is None
            or not call.allow.tool(server, tool)
            or not spec.offers(tool)
        ):
            # Never forwarded; the same words whether it exists or is only forbidden.
            record.finish(self.metrics, self.audit(), 403, "forbidden", "permission_error")
            yield self._refused_tool(rid, name)
            return
        audit = self.audit()
        try:
            listed = await self._listed_tool(call, server, tool)
        except ServerDown as down:  # its list did not come: the call is not sent either
            late = down.kind == "timeout"
            status, outcome, kind = (504, "timeout", "timeout_error") if late else _DOWN
            record.finish(self.metrics, audit, status, outcome, kind)
            yield unavailable(rid, down)
            return
        if not listed:
            record.finish(self.metrics, audit, 400, "unknown_tool", "invalid_request_error")
            yield self._refused_tool(rid, name)
            return
        if spec.limits:
            who = Who(call.session.gateway, call.consumer, call.key_id, server, tool)
            try:
                await self.limiter().reserve(spec.limits, who, Estimate(0, 0))
            except RateLimited as exc:
                record.finish(self.metrics, audit, 429, "rate_limited", "rate_limit_error")
                wait = exc.headers.get("retry-after")
                data = {"server": server, "retry_after": int(wait)} if wait else None
                yield error(rid, RATE_LIMITED, exc.message, data)
                return
        screening = Screening()
        if spec.guard is not None and "arguments" in params:
            try:
                screened = screen_arguments(spec.guard, params["arguments"], screening)
            except ContentBlocked as exc:
                record.finish(self.metrics, audit, 400, "blocked", "content_blocked")
                yield error(rid, BLOCKED, exc.message, {"server": server})
                return
            params = {**params, "arguments": screened}
        forwarded = {**message, "params": {**params, "name": tool}}
        status, outcome, kind = 502, "unavailable", "upstream_error"
        try:
            async for item in self.relay.ask(call, server, forwarded):
                if call.aggregated and "method" in item and "id" in item:
                    item = {**item, "id": relay_id(server, item["id"])}
                if is_response(item) and spec.guard is not None and "result" in item:
                    try:
                        screened = screen_result(spec.guard, item["result"], screening)
                    except ContentBlocked as exc:
                        record.step = "2xx"
                        status, outcome, kind = 400, "blocked", "content_blocked"
                        yield error(rid, BLOCKED, exc.message, {"server": server})
                        return
                    item = {**item, "result": screened}
                if is_response(item):
                    record.step = "2xx"  # the server answered; what it said is below
                    if "error" in item:
                        status, outcome, kind = 400, "rpc_error", _rpc_error_type(item)
                    elif isinstance(item.get("result"), dict) and item["result"].get("isError"):
                        status, outcome, kind = 200, "tool_error", "tool_error"
                    else:
                        status, outcome, kind = 200, "ok", None  # type: ignore[assignment]
                yield item
        except ServerDown as down:
            record.step = _STEPS.get(down.kind, "connect")
            if down.kind == "timeout":
                status, outcome, kind = 504, "timeout", "timeout_error"
            yield unavailable(rid, down)
        finally:
            record.labels = self.relay.servers.label_for(server, tool)
            record.finish(self.metrics, audit, status, outcome, kind)

    async def _listed_tool(self, call: Call, server: str, tool: str) -> bool:
        """Whether the server listed ``tool``: a name it never listed is not sent, however
        lenient the server (a client's invented name could reach a tool the allow list
        keeps out, or grow the metrics). The list is asked for again when the name is new
        (at most once a second), since the server may have added the tool since."""
        servers = self.relay.servers
        if servers.knows(server, tool):
            return True
        if not servers.may_learn(server):
            return False
        await self.lists.learn_tools(call, server)
        return servers.knows(server, tool)

    async def _named(self, call: Call, message: Message, field: str) -> Reply:
        rid = message.get("id")
        params = message.get("params")
        name = params.get(field) if isinstance(params, dict) else None
        parts = split_name(name) if isinstance(name, str) else None
        if parts is None or not isinstance(params, dict) or parts[0] not in call.servers():
            yield error(rid, INVALID_PARAMS, f"Unknown prompt: {name}")
            return
        server, own = parts
        forwarded = {**message, "params": {**params, field: own}}
        async for item in self._relayed(call, server, forwarded, rename=True):
            yield item

    async def _owner(self, call: Call, uri: str) -> str | None:
        owners = self.lists.owners
        server = owners.owner(uri)
        if server is None:
            await self.lists.collect(call, "resources/list")
            await self.lists.collect(call, "resources/templates/list")
            server = owners.owner(uri)
        allowed = call.servers()
        if server is None and len(allowed) == 1:
            return allowed[0]
        return server if server in allowed else None

    async def _by_uri(self, call: Call, message: Message) -> Reply:
        rid = message.get("id")
        params = message.get("params")
        uri = params.get("uri") if isinstance(params, dict) else None
        server = await self._owner(call, uri) if isinstance(uri, str) else None
        if server is None:
            yield error(rid, INVALID_PARAMS, f"Unknown resource: {uri}")
            return
        async for item in self._relayed(call, server, message, rename=True):
            yield item

    async def _completion(self, call: Call, message: Message) -> Reply:
        rid = message.get("id")
        params = message.get("params")
        ref = params.get("ref") if isinstance(params, dict) else None
        if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
            parts = split_name(str(ref.get("name")))
            if parts is not None and parts[0] in call.servers():
                fixed = {**params, "ref": {**ref, "name": parts[1]}}  # type: ignore[dict-item]
                async for item in self._relayed(call, parts[0], {**message, "params": fixed}):
                    yield item
                return
        elif isinstance(ref, dict) and isinstance(ref.get("uri"), str):
            server = await self._owner(call, ref["uri"])
            if server is not None:
                async for item in self._relayed(call, server, message):
                    yield item
                return
        yield result(rid, {"completion": {"values": [], "hasMore": False}})

    async def _everywhere(self, call: Call, message: Message) -> Reply:
        servers = list(call.session.upstream)
        await asyncio.gather(
            *(self.relay.answer(call, s, message) for s in servers), return_exceptions=True
        )
        yield result(message.get("id"), {})

    # -- what is not a request -------------------------------------------------------

    async def notify(self, call: Call, message: Message) -> None:
        if message.get("method") not in RELAYED_NOTIFICATIONS:
            # initialized: each server was told when its session opened; anything else
            # (a request without its id too) would reach servers past every check.
            return
        targets = list(call.session.upstream)
        for server in targets:
            with contextlib.suppress(ServerDown):
                await self.relay.post(call, server, message)

    async def answer(self, call: Call, message: Message) -> None:
        """The client's response to a server's request."""
        if call.aggregated:
            found = unrelay_id(message.get("id"))
            if found is None or found[0] not in call.session.upstream:
                return
            server, original = found
            message = {**message, "id": original}
        else:
            server = call.session.server or ""
        with contextlib.suppress(ServerDown):
            await self.relay.post(call, server, message)

    async def end(self, call: Call) -> None:
        clients = self.relay.servers.clients
        await asyncio.gather(
            *(
                clients[name].end(entry[0])
                for name, entry in call.session.upstream.items()
                if name in clients
            ),
            return_exceptions=True,
        )
