"""One gateway's MCP servers: its compiled ``mcp_servers`` and allow lists, its server
clients (stdio processes included) and what relays to them.

Every gateway (the default one and each of ``gateways:``) has a hub of its own, so that
a tenant's servers, server sessions, health and tool names never mix with another's.
"""

from __future__ import annotations

from collections.abc import Callable

from sluicegate.config.model import Config
from sluicegate.mcp.dispatch import Dispatcher
from sluicegate.mcp.relay import Relay
from sluicegate.mcp.servers import Servers
from sluicegate.mcp.sessions import Sessions
from sluicegate.mcp.table import McpTable, compile_mcp
from sluicegate.mcp.telemetry import McpMetrics
from sluicegate.policies.rate_limit import RateLimiter
from sluicegate.telemetry.audit import AuditWriter


class Hub:
    def __init__(
        self,
        gateway: str,
        metrics: McpMetrics,
        audit: Callable[[], AuditWriter | None],
        limiter: Callable[[], RateLimiter],
        log_prefix: str = "",
    ) -> None:
        self.gateway = gateway
        self.metrics = metrics
        self.servers = Servers(metrics, gateway, log_prefix)
        self._audit = audit
        self._limiter = limiter
        self._config: Config | None = None
        self._table = McpTable()
        self._dispatcher: Dispatcher | None = None

    def table(self, config: Config) -> McpTable:
        """The gateway's servers and allow lists, compiled once per change of its config."""
        if config is not self._config:
            self._table = compile_mcp(config)
            self._config = config
            self.servers.sync(self._table.servers)
        return self._table

    def dispatcher(self, sessions: Sessions) -> Dispatcher:
        if self._dispatcher is None:
            relay = Relay(self.servers, sessions)
            self._dispatcher = Dispatcher(relay, self.metrics, self._audit, self._limiter)
        return self._dispatcher

    async def close(self) -> None:
        await self.servers.close()
