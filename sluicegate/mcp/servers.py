"""The upstream MCP servers of the running config: a client for each, and its health.

A server that fails to open a session or to answer is marked down and left out of
aggregated answers; it is tried again after a pause that doubles up to
``MAX_PAUSE`` (so a dead server costs a list nothing most of the time), and is up
again at its first success. Each change is logged once and shown as
``sluicegate_mcp_server_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson

from sluicegate.mcp.http_client import HttpUpstream
from sluicegate.mcp.stdio_client import StdioUpstream
from sluicegate.mcp.table import ServerSpec
from sluicegate.mcp.telemetry import McpMetrics
from sluicegate.mcp.upstream import Opened, ServerDown, Upstream
from sluicegate.mcp.wire import Message

log = logging.getLogger("sluicegate.mcp")

FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0
LEARN_PAUSE = 1.0


@dataclass(slots=True)
class Health:
    up: bool = True
    failures: int = 0
    retry_at: float = 0.0
    reason: str = ""  # the last failure, the server named: "MCP server 'x' is unreachable …"
    cause: str = ""  # the same without the name: "is unreachable …"


def as_down(server: str, exc: BaseException) -> ServerDown:
    """Any failure of a server as the one error callers handle (never with a secret)."""
    if isinstance(exc, ServerDown):
        return exc
    if isinstance(exc, TimeoutError):
        return ServerDown(server, "did not answer in time", "timeout")
    if isinstance(exc, orjson.JSONDecodeError):
        return ServerDown(server, "answered something that is not JSON", "status")
    return ServerDown(server, f"failed ({type(exc).__name__})")


FAILURES = (ServerDown, TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, OSError)


class Servers:
    """One gateway's servers: each gateway has its own clients, server sessions and stdio
    processes, so that no gateway's callers reach another's."""

    def __init__(self, metrics: McpMetrics, gateway: str, log_prefix: str = "") -> None:
        self.metrics = metrics
        self.gateway = gateway
        self.log_prefix = log_prefix  # "gateway 'team-a': " for all but the default gateway
        self.specs: Mapping[str, ServerSpec] = {}
        self.clients: dict[str, Upstream] = {}
        self.health: dict[str, Health] = {}
        self.tool_counts: dict[str, int] = {}  # the tools each last listed (all its pages)
        # The tool names each server has listed: metric labels come from these only, never
        # from what a client sends (``label_for``).
        self.tool_names: dict[str, set[str]] = {}
        self._learned: dict[str, float] = {}  # when each last listed all its tools
        self._http: aiohttp.ClientSession | None = None
        self._retired: list[Upstream] = []

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._http

    def sync(self, specs: Mapping[str, ServerSpec]) -> None:
        """Clients for the config's servers; a changed or removed one is closed later."""
        if specs is self.specs:
            return
        for name, client in list(self.clients.items()):
            if not client.spec.same_client(specs.get(name)):
                self._retired.append(self.clients.pop(name))
        for name, spec in specs.items():
            if name in self.clients:
                self.clients[name].spec = spec  # the same server; its policies may be new
            else:
                self.clients[name] = (
                    HttpUpstream(spec, self._session()) if spec.url else StdioUpstream(spec)
                )
                self.health.setdefault(name, Health())
                self.metrics.up.labels(self.gateway, name).set(1 if self.health[name].up else 0)
        for name in list(self.health):
            if name not in specs:
                del self.health[name]
                self.metrics.up.remove(self.gateway, name)
        self.specs = specs
        if self._retired:
            retired, self._retired = self._retired, []
            for client in retired:
                asyncio.get_running_loop().create_task(client.close())

    def listed(self, server: str, names: list[str], whole: bool) -> None:
        """Tools a server listed; ``whole``: every page of its list."""
        known = self.tool_names.setdefault(server, set())
        if len(known) < 10_000:
            known.update(names)
        if whole:
            self.tool_counts[server] = len(names)
            self._learned[server] = time.monotonic()

    def knows(self, server: str, tool: str) -> bool:
        """Whether the server has listed the tool (only those are ever called)."""
        return tool in self.tool_names.get(server, ())

    def may_learn(self, server: str) -> bool:
        """Whether its whole tool list may be asked for again: at most once a second, so
        that a client's made-up names do not each cost the server a list."""
        return time.monotonic() - self._learned.get(server, -LEARN_PAUSE) >= LEARN_PAUSE

    def label_for(self, server: str, tool: str) -> tuple[str, str]:
        """The metric labels of a call: a server's or tool's name only once it is known to
        exist, else ``other`` (a client's made-up names must not grow ``/metrics``)."""
        if server not in self.specs:
            return "other", "other"
        return server, tool if tool in self.tool_names.get(server, ()) else "other"

    def client(self, name: str) -> Upstream:
        found = self.clients.get(name)
        if found is None:  # taken out of the config while a session still names it
            raise ServerDown(name, "is not configured any more")
        return found

    def may_try(self, name: str) -> bool:
        health = self.health.get(name)
        return health is None or health.up or time.monotonic() >= health.retry_at

    def failed(self, name: str, exc: ServerDown) -> None:
        health = self.health.setdefault(name, Health())
        health.failures += 1
        pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** (health.failures - 1))
        health.retry_at = time.monotonic() + pause
        if health.up or health.reason != str(exc):
            log.warning(
                "%s%s; left out of MCP answers, tried again in %.1fs", self.log_prefix, exc, pause
            )
        health.up, health.reason, health.cause = False, str(exc), exc.reason
        self.metrics.up.labels(self.gateway, name).set(0)

    def succeeded(self, name: str) -> None:
        health = self.health.get(name)
        if health is not None and not health.up:
            log.info("%sMCP server '%s' answers again", self.log_prefix, name)
            health.up, health.failures, health.reason, health.cause = True, 0, "", ""
            self.metrics.up.labels(self.gateway, name).set(1)

    async def open(self, name: str, params: Message) -> Opened:
        client = self.client(name)
        try:
            async with asyncio.timeout(client.spec.timeout):
                opened = await client.open(params)
        except FAILURES as exc:
            down = as_down(name, exc)
            self.failed(name, down)
            raise down from None
        self.succeeded(name)
        return opened

    def status(self) -> list[dict[str, object]]:
        """Each server as the dashboard shows it: how it is reached (never a secret), its
        health and the tools it last listed."""
        out: list[dict[str, object]] = []
        for name, spec in self.specs.items():
            health = self.health.get(name, Health())
            out.append(
                {
                    "name": name,
                    "transport": spec.transport,
                    "target": spec.where,
                    "up": health.up,
                    "reason": health.reason or None,
                    "tools": self.tool_counts.get(name),
                    "description": spec.description,
                    "tags": list(spec.tags),
                }
            )
        return out

    async def close(self) -> None:
        for client in [*self.clients.values(), *self._retired]:
            await client.close()
        self.clients.clear()
        for name in self.health:
            with contextlib.suppress(KeyError):  # its gateway is gone: so are its gauges
                self.metrics.up.remove(self.gateway, name)
        self.health.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
