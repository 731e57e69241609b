"""Follow the writes of other instances: a version poll, woken early by notifications.

Every store write bumps ``config_version``. The follower compares it with the
version the running table was built from every ``interval`` seconds (the
safety net, and all there is for SQLite); a PostgreSQL ``NOTIFY`` on
``stores.base.CHANNEL`` wakes it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sluicegate.stores.base import Store, Unlisten
from sluicegate.waiting import set_within

log = logging.getLogger("sluicegate")


async def follow_store(
    store: Store,
    current: Callable[[], int | None],
    on_change: Callable[[], Awaitable[object]],
    interval: float = 1.0,
) -> None:
    """Run until cancelled; ``current`` is the version the running table was built from."""
    wake = asyncio.Event()
    unlisten: Unlisten | None = None
    failing = False
    try:
        try:
            unlisten = await store.listen(wake.set)
        except Exception as exc:  # the poll still works without notifications
            log.warning("config store: no change notifications (%s); polling only", exc)
        while True:
            await set_within(wake, interval)
            wake.clear()
            try:
                version = await store.config_version()
            except Exception as exc:
                if not failing:  # one line when it starts failing, one when it is back
                    log.warning("config store unreachable (%s); the running config stays", exc)
                failing = True
                continue
            if failing:
                log.info("config store reachable again")
                failing = False
            if version != current():
                try:
                    await on_change()
                except Exception:  # keep following; the running table stays
                    log.exception("config store: reloading failed")
    finally:
        if unlisten is not None:
            await unlisten()
