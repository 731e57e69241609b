"""Waiting on an event with a limit, for the gateway's background loops."""

from __future__ import annotations

import asyncio
import contextlib


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` is set within ``seconds``.

    asyncio.timeout rather than wait_for: wait_for makes a task for each wait, and these
    loops wait several times a second for the life of the process.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
