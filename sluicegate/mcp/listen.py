"""The GET stream of a client session: what its servers send outside any request, merged.

Each server session of the client session is listened to at once; their messages reach
the client as they come, except list changes: a burst of ``notifications/*/list_changed``
(a server reloading its tools, or several servers at once) becomes one notification per
kind, ``DEBOUNCE`` seconds after the first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from sluicegate.mcp.context import Call
from sluicegate.mcp.servers import Servers
from sluicegate.mcp.wire import Message, relay_id

DEBOUNCE = 0.25
_QUEUE = 1000


def _changed(message: Message) -> bool:
    method = message.get("method")
    return isinstance(method, str) and method.endswith("/list_changed") and "id" not in message


async def listen(servers: Servers, call: Call) -> AsyncGenerator[Message, None]:
    queue: asyncio.Queue[Message] = asyncio.Queue(_QUEUE)

    async def pump(server: str, session: str | None, version: str) -> None:
        client = servers.clients.get(server)
        if client is None:
            return
        async for item in client.listen(session, version):
            if call.aggregated and "method" in item and "id" in item:
                item = {**item, "id": relay_id(server, item["id"])}
            if queue.full():
                continue  # a client that does not read loses notifications, not memory
            queue.put_nowait(item)

    tasks = [
        asyncio.create_task(pump(name, entry[0], entry[1]))
        for name, entry in call.session.upstream.items()
    ]
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await queue.get()
            if not _changed(item):
                yield item
                continue
            kinds = {str(item["method"])}
            others: list[Message] = []
            deadline = loop.time() + DEBOUNCE
            while (left := deadline - loop.time()) > 0:
                try:
                    more = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if _changed(more):
                    kinds.add(str(more["method"]))
                else:
                    others.append(more)
            for kind in sorted(kinds):
                yield {"jsonrpc": "2.0", "method": kind}
            for other in others:
                yield other
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
