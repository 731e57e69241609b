"""A lenient MCP server (streamable HTTP, JSON answers): it records every message it is
sent and answers any ``tools/call``, even for a tool it never listed, as a careless server
might. The gateway's checks are what keep a client's messages from it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

TOOLS = ["read_a", "read_b", "write_b", "read_fail", "read_broken"]


class LenientMcp(FakeServer):
    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def methods(self) -> list[str]:
        """The method of each message it was sent, in order."""
        return [str(r["body"].get("method")) for r in self.requests]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/mcp", self.mcp)
        app.router.add_delete("/mcp", self.ended)

    async def ended(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def mcp(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        rid, method = body.get("id"), body.get("method")
        if rid is None:
            return web.Response(status=202)
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        found: dict[str, Any]
        if method == "initialize":
            found = {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "lenient", "version": "1"},
            }
        elif method == "tools/list":
            found = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]}
        elif method == "tools/call":
            name = params.get("name")
            if name == "read_fail":
                return web.json_response(
                    {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "broke"}}
                )
            if name == "read_broken":
                text = [{"type": "text", "text": "the disk is full"}]
                return web.json_response(
                    {"jsonrpc": "2.0", "id": rid, "result": {"content": text, "isError": True}}
                )
            found = {"content": [{"type": "text", "text": f"called {name}"}]}
        else:
            found = {"echo": method}
        headers = {"mcp-session-id": "lenient-1"} if method == "initialize" else {}
        return web.json_response({"jsonrpc": "2.0", "id": rid, "result": found}, headers=headers)
