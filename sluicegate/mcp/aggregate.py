"""The aggregated endpoint's lists: every allowed server asked at once, each within its
timeout; a server that fails is left out (and counted), never the whole answer."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import Any

from sluicegate.mcp.context import Call
from sluicegate.mcp.relay import Relay
from sluicegate.mcp.telemetry import McpMetrics
from sluicegate.mcp.upstream import ServerDown
from sluicegate.mcp.wire import Message, joined

log = logging.getLogger("sluicegate.mcp")

MAX_PAGES = 100  # of one server's list: a server whose cursors never end stops here
_INDEX_LIMIT = 100_000

# What each list method returns its items under.
LISTS = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}


def _template_pattern(template: str) -> re.Pattern[str]:
    """An RFC 6570 URI template as a pattern that its expansions match (loosely: each
    expression is any run of characters, a reserved one may hold '/')."""
    out, pos = [], 0
    for found in re.finditer(r"\{([^}]*)\}", template):
        out.append(re.escape(template[pos : found.start()]))
        out.append(".*" if found[1][:1] in "+#/?&" else "[^/]*")
        pos = found.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


class Owners:
    """Which server a resource URI belongs to, learnt from the lists the gateway relays."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}
        self.templates: dict[str, tuple[re.Pattern[str], str]] = {}

    def learn(self, key: str, server: str, item: Message) -> None:
        if key == "resources" and isinstance(item.get("uri"), str):
            if len(self.uris) >= _INDEX_LIMIT:
                self.uris.clear()
            self.uris[item["uri"]] = server
        elif key == "resourceTemplates" and isinstance(item.get("uriTemplate"), str):
            template = item["uriTemplate"]
            if template not in self.templates and len(self.templates) < _INDEX_LIMIT:
                self.templates[template] = (_template_pattern(template), server)

    def owner(self, uri: str) -> str | None:
        found = self.uris.get(uri)
        if found is not None:
            return found
        for pattern, server in self.templates.values():
            if pattern.fullmatch(uri):
                return server
        return None


class Aggregator:
    def __init__(self, relay: Relay, metrics: McpMetrics, page_size: int) -> None:
        self.relay = relay
        self.metrics = metrics
        self.page_size = page_size
        self.owners = Owners()
        # The gateway's own requests need ids no other request in flight in the same
        # server session has: two lists at once must not be answered each other's pages.
        self._ids = itertools.count(1)

    async def initialize(self, call: Call) -> None:
        """Open a session at every allowed server at once; the ones that fail are left out
        until a later message tries them again."""
        names = call.servers()
        results = await asyncio.gather(
            *(self.relay.open(call, name) for name in names), return_exceptions=True
        )
        for name, found in zip(names, results, strict=True):
            if isinstance(found, ServerDown):
                self.metrics.left_out.labels(call.session.gateway, name, found.kind).inc()
            elif isinstance(found, BaseException):
                raise found

    async def collect(self, call: Call, method: str) -> list[tuple[str, Message]]:
        """Every item of ``method`` from every allowed server, in config order."""
        key = LISTS[method]
        names = call.servers()
        results = await asyncio.gather(
            *(self._all_pages(call, name, method, key) for name in names),
            return_exceptions=True,
        )
        items: list[tuple[str, Message]] = []
        for name, found in zip(names, results, strict=True):
            if isinstance(found, ServerDown):
                self.metrics.left_out.labels(call.session.gateway, name, found.kind).inc()
                continue
            if isinstance(found, BaseException):
                raise found
            if key == "tools":
                self.relay.servers.listed(name, [str(t.get("name")) for t in found], True)
            for item in found:
                self.owners.learn(key, name, item)
                items.append((name, item))
        return items

    async def learn_tools(self, call: Call, server: str) -> None:
        """The server's whole tool list, learned (``ServerDown``)."""
        found = await self._all_pages(call, server, "tools/list", "tools")
        self.relay.servers.listed(server, [str(t.get("name")) for t in found], True)

    async def _all_pages(self, call: Call, server: str, method: str, key: str) -> list[Message]:
        try:
            async with asyncio.timeout(call.table.servers[server].timeout):
                return await self._pages(call, server, method, key)
        except TimeoutError:
            down = ServerDown(server, "did not list in time", "timeout")
            self.relay.servers.failed(server, down)
            raise down from None

    async def _pages(self, call: Call, server: str, method: str, key: str) -> list[Message]:
        out: list[Message] = []
        cursor: Any = None
        for _ in range(MAX_PAGES):
            own = f"sg-{key}-{next(self._ids)}"
            message: Message = {"jsonrpc": "2.0", "id": own, "method": method}
            if cursor is not None:
                message["params"] = {"cursor": cursor}
            answer = await self.relay.answer(call, server, message)
            result = answer.get("result")
            if not isinstance(result, dict):
                return out  # a server without that capability: "method not found"
            out.extend(i for i in result.get(key) or () if isinstance(i, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return out

    def named(self, call: Call, key: str, items: list[tuple[str, Message]]) -> list[Message]:
        """Items as this caller may see them: permitted only; tools and prompts renamed
        ``{server}__{name}``."""
        out = []
        for server, item in items:
            if key in ("tools", "prompts"):
                name = item.get("name")
                if not isinstance(name, str):
                    continue
                if key == "tools" and not (
                    call.table.servers[server].offers(name) and call.allow.tool(server, name)
                ):
                    continue
                item = {**item, "name": joined(server, name)}
            out.append(item)
        return out
