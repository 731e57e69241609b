"""MCP servers written with the official ``mcp`` SDK, for the gateway's tests.

Each runs as a process of its own, so a test can kill one and start it again:
``python -m tests.fakes.mcp_servers NAME --port N`` serves streamable HTTP on loopback,
``python -m tests.fakes.mcp_servers NAME --stdio`` speaks stdio.

- ``counter``: stateful. ``increment`` counts per server session, so a gateway that
  opened a new upstream session per call would always answer 1. ``slow_count`` reports
  progress, ``ask_model`` asks the client for a sampling, ``whoami`` shows the headers
  the server was sent (the gateway's credentials, never the client's key).
- ``tickets``: ``read_ticket``, ``read_status``, ``write_ticket``, a prompt, a resource
  and a resource template, and ``extra`` more tools (``read_bulk_NNN``) for pagination.
- ``notes`` (stdio): ``read_note``, ``add_note`` and a resource.
- ``environ`` (stdio): ``environment`` answers the process's environment, one
  ``NAME=value`` a line (what the gateway passed on to a third-party server).
"""

import argparse
import asyncio
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def counter() -> Any:
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.types import SamplingMessage, TextContent

    server = MCPServer("counter")
    counts: dict[str, int] = {}

    @server.tool()
    async def increment(ctx: Context) -> int:
        """Add one to this session's counter and return it."""
        key = (ctx.headers or {}).get("mcp-session-id", "")
        counts[key] = counts.get(key, 0) + 1
        return counts[key]

    @server.tool()
    async def slow_count(steps: int, ctx: Context) -> str:
        """Count to steps, reporting progress at each."""
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"step {i}")
            await asyncio.sleep(0.01)
        return f"counted to {steps}"

    @server.tool()
    async def ask_model(question: str, ctx: Context) -> str:
        """Ask the client's model (sampling) and return its answer."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = await ctx.session.create_message(
                [SamplingMessage(role="user", content=TextContent(type="text", text=question))],
                max_tokens=50,
                related_request_id=ctx.request_id,
            )
        content = answer.content
        return f"model said: {getattr(content, 'text', content)}"

    from pydantic import BaseModel

    class Verdict(BaseModel):
        ok: bool

    @server.tool()
    async def confirm(question: str, ctx: Context) -> str:
        """Ask the client's user (elicitation)."""
        answer = await ctx.elicit(question, Verdict)
        return f"{answer.action}: {getattr(answer, 'data', None)}"

    @server.tool()
    async def roots(ctx: Context) -> str:
        """The client's roots (a request of the server's own, outside this call)."""
        found = await ctx.session.list_roots()
        return ", ".join(str(r.uri) for r in found.roots)

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool called name, and say the list changed (three times: a storm)."""

        def added() -> str:
            return f"I am {name}"

        server.add_tool(added, name=name, description="added at run time")
        for _ in range(3):
            await ctx.session.send_tool_list_changed()
        return "grown"

    cancelled: list[str] = []

    @server.tool()
    async def wait_long(ctx: Context) -> str:
        """Wait ten seconds, unless the call is cancelled."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(str(ctx.request_id))
            raise
        return "waited"

    @server.tool()
    async def was_cancelled() -> str:
        """How many wait_long calls were cancelled."""
        return str(len(cancelled))

    @server.tool()
    async def session_id(ctx: Context) -> str:
        """The Mcp-Session-Id this server gave the caller."""
        return (ctx.headers or {}).get("mcp-session-id", "")

    @server.tool()
    async def whoami(ctx: Context) -> str:
        """The authorization headers this server was sent."""
        headers = ctx.headers or {}
        return f"authorization={headers.get('authorization')} key={headers.get('x-api-key')}"

    @server.prompt()
    def greet(name: str) -> str:
        """Greet someone."""
        return f"Hello, {name}!"

    @server.resource("counter://about")
    def about() -> str:
        return "a counter"

    return server


def tickets(extra: int) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("tickets")

    @server.tool()
    def read_ticket(ticket: int) -> str:
        """Read one ticket."""
        return f"ticket {ticket}: printer on fire"

    @server.tool()
    def read_status() -> str:
        """The tracker's status."""
        return "all systems nominal"

    @server.tool()
    def write_ticket(title: str) -> str:
        """Open a ticket."""
        return f"opened: {title}"

    for i in range(extra):

        def bulk(i: int = i) -> str:
            return f"bulk {i}"

        server.add_tool(bulk, name=f"read_bulk_{i:03d}", description=f"bulk tool {i}")

    @server.prompt()
    def summarize(ticket: int) -> str:
        """Summarize a ticket."""
        return f"Summarize ticket {ticket}."

    @server.resource("tickets://open")
    def open_tickets() -> str:
        return "1, 2, 3"

    @server.resource("tickets://ticket/{ticket}")
    def one_ticket(ticket: str) -> str:
        return f"ticket {ticket} in full"

    return server


def notes() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("notes")
    stored: dict[str, str] = {"hello": "world"}

    @server.tool()
    def read_note(name: str) -> str:
        """Read a note."""
        return stored.get(name, "no such note")

    @server.tool()
    def add_note(name: str, text: str) -> str:
        """Add a note."""
        stored[name] = text
        return "added"

    @server.resource("notes://all")
    def all_notes() -> str:
        return ", ".join(sorted(stored))

    return server


def environ() -> Any:
    import os

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("environ")

    @server.tool()
    def environment() -> str:
        """This process's environment."""
        return "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items()))

    return server


def build(name: str, extra: int) -> Any:
    if name == "environ":
        return environ()
    if name == "counter":
        return counter()
    if name == "tickets":
        return tickets(extra)
    return notes()


def stdio_command(name: str) -> list[str]:
    return [sys.executable, "-m", "tests.fakes.mcp_servers", name, "--stdio"]


class McpProcess:
    """One server as a child process on a fixed loopback port, to kill and start again."""

    def __init__(self, name: str, port: int, extra: int = 0) -> None:
        self.name, self.port, self.extra = name, port, extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> "McpProcess":
        command = [
            *stdio_command(self.name)[:-1],
            "--port",
            str(self.port),
            "--extra",
            str(self.extra),
        ]
        self.proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"MCP server {self.name} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=["counter", "tickets", "notes", "environ"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--extra", type=int, default=0)
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    server = build(args.name, args.extra)
    if args.stdio:
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="error")


if __name__ == "__main__":
    main()
