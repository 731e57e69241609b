"""What the two transports to an MCP server have in common."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

from sluicegate.mcp.wire import Message

if TYPE_CHECKING:
    from sluicegate.mcp.table import ServerSpec


class ServerDown(Exception):
    """The server could not be reached, did not answer in time, or answered with an HTTP
    error. The message names the server and never holds a secret."""

    def __init__(self, server: str, reason: str, kind: str = "down") -> None:
        super().__init__(f"MCP server '{server}' {reason}")
        self.server = server
        self.reason = reason  # the words after the server's name
        self.kind = kind  # down | timeout | status


class SessionLost(ServerDown):
    """The server no longer knows the session (it restarted, or expired it): open anew."""


class Opened(NamedTuple):
    session: str | None  # the server's Mcp-Session-Id (stdio: the process's generation)
    version: str  # the protocol version the server agreed to
    result: Message  # its initialize result


class Upstream(Protocol):
    spec: ServerSpec

    async def open(self, params: Message) -> Opened:
        """``initialize`` with ``params``, then ``notifications/initialized``."""

    def exchange(
        self, session: str | None, version: str, message: Message
    ) -> AsyncIterator[Message]:
        """Send a request; yield what the server sends back for it (its notifications and
        requests on the way), its response last."""

    async def post(self, session: str | None, version: str, message: Message) -> None:
        """Send a notification, or a response to one of the server's requests."""

    def listen(self, session: str | None, version: str) -> AsyncIterator[Message]:
        """What the server sends outside any request (list changes, log messages, its own
        requests), for as long as the caller reads."""

    async def end(self, session: str | None) -> None:
        """End the server's session (streamable HTTP: DELETE)."""

    async def close(self) -> None: ...
