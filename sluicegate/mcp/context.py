"""What one client message is handled with: its session, caller and permissions."""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.mcp.sessions import McpSession
from sluicegate.mcp.table import Allow, McpTable


@dataclass(slots=True)
class Call:
    session: McpSession
    table: McpTable
    allow: Allow
    request_id: str
    key_prefix: str | None = None
    key_id: str = ""  # counts rate limits per key: a digest, never the key
    dirty: bool = False  # a server session was opened or lost: the record is saved after

    @property
    def aggregated(self) -> bool:
        return self.session.server is None

    @property
    def consumer(self) -> str:
        return self.session.consumer

    def servers(self) -> list[str]:
        """The servers this caller may reach through its endpoint."""
        if self.session.server is not None:
            found = self.session.server in self.table.servers
            return [self.session.server] if found else []
        return [name for name in self.table.servers if self.allow.server(name)]
