"""Messages to one server within a client session: its server session opened on first
use, opened anew when the server lost it, failures turned into ``ServerDown``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sluicegate.mcp.context import Call
from sluicegate.mcp.servers import FAILURES, Servers, as_down
from sluicegate.mcp.sessions import Sessions, SessionsUnavailable
from sluicegate.mcp.upstream import Opened, ServerDown, SessionLost
from sluicegate.mcp.wire import LATEST, VERSIONS, Message, is_response


def upstream_params(client: Message) -> Message:
    """The initialize params the gateway sends a server: the client's capabilities (so a
    server may ask for sampling, elicitation or roots, relayed to the client) and name."""
    version = client.get("protocolVersion")
    return {
        "protocolVersion": version if version in VERSIONS else LATEST,
        "capabilities": client.get("capabilities") or {},
        "clientInfo": client.get("clientInfo") or {"name": "sluicegate", "version": "0"},
    }


class Relay:
    def __init__(self, servers: Servers, sessions: Sessions) -> None:
        self.servers = servers
        self.sessions = sessions

    async def opened(self, call: Call, server: str) -> list[Any]:
        """``[server session, version]`` of ``server`` in this client session."""
        entry = call.session.upstream.get(server)
        if entry is not None:
            return entry
        if not self.servers.may_try(server):
            health = self.servers.health.get(server)
            cause = health.cause if health is not None and health.cause else "is down"
            raise ServerDown(server, f"{cause}; it is tried again shortly")
        found = await self.open(call, server)
        return [found.session, found.version]

    async def open(self, call: Call, server: str) -> Opened:
        found = await self.servers.open(server, upstream_params(call.session.params))
        call.session.upstream[server] = [found.session, found.version]
        call.dirty = True
        return found

    async def _lost(self, call: Call, server: str, entry: list[Any]) -> None:
        """Forget a server session the server lost, unless another instance has already
        opened a new one (then that one is used)."""
        call.session.upstream.pop(server, None)
        call.dirty = True
        if self.sessions.shared:
            try:
                latest = await self.sessions.get(call.session.id)
            except SessionsUnavailable:
                return  # an answer may be under way: open a new server session instead
            if latest is not None:
                newer = latest.upstream.get(server)
                if newer is not None and newer != entry:
                    call.session.upstream[server] = newer

    async def ask(self, call: Call, server: str, message: Message) -> AsyncIterator[Message]:
        """What the server sends back for a request, its response last."""
        for attempt in range(2):
            entry = await self.opened(call, server)
            client = self.servers.client(server)
            try:
                async for item in client.exchange(entry[0], entry[1], message):
                    yield item
                self.servers.succeeded(server)
                return
            except SessionLost:
                if attempt:
                    raise ServerDown(server, "lost the session again at once") from None
                await self._lost(call, server, entry)
            except FAILURES as exc:
                down = as_down(server, exc)
                self.servers.failed(server, down)
                raise down from None

    async def answer(self, call: Call, server: str, message: Message) -> Message:
        """The response alone, for the gateway's own use (lists); what came before it is
        dropped."""
        last: Message | None = None
        async for item in self.ask(call, server, message):
            if is_response(item):
                last = item
        if last is None:
            raise ServerDown(server, "sent no answer")
        return last

    async def post(self, call: Call, server: str, message: Message) -> None:
        entry = call.session.upstream.get(server)
        if entry is None:
            return  # no session there: nothing to tell
        try:
            await self.servers.client(server).post(entry[0], entry[1], message)
        except FAILURES as exc:
            down = as_down(server, exc)
            if not isinstance(down, SessionLost):
                self.servers.failed(server, down)
            raise down from None
