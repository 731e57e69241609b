"""Watch the config file: poll its size, modification time and inode, call back on a change.

Polling once a second costs one ``stat`` and works the same on every platform,
every filesystem and with every editor (in-place writes and write-then-rename).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

Stamp = tuple[int, int, int]

log = logging.getLogger("sluicegate")


def stamp(path: Path) -> Stamp | None:
    """What tells one version of the file from another; ``None`` while it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def watch_file(
    path: Path,
    on_change: Callable[[], Awaitable[object]],
    interval: float = 1.0,
    settle: float = 0.05,
) -> None:
    """Run until cancelled; ``on_change`` runs once per change that has settled."""
    seen = stamp(path)
    while True:
        await asyncio.sleep(interval)
        now = stamp(path)
        if now is None or now == seen:
            continue  # a missing file (mid-rename) is not a change to act on
        # An editor may still be writing: wait until two looks agree.
        while True:
            await asyncio.sleep(settle)
            again = stamp(path)
            if again == now:
                break
            now = again
        if now is None:
            continue
        seen = now
        try:
            await on_change()
        except Exception:  # keep watching; the running table stays
            log.exception("%s: reloading failed", path)
