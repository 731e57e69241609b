"""Limit counters shared by the worker processes of one ``sluicegate serve --workers N``.

Without Redis, each worker would count alone and a limit would hold N times over. The
workers instead count in one SQLite file in the folder of their run (``workers``): the
same sliding windows as ``windows.MemoryCounters``, each reservation one local
transaction that takes the file's write lock at once, so that two workers never both
see room for the last request. The calls are synchronous: a transaction on a local file
takes tens of microseconds, less than a hop to a thread. Redis, when configured, is used
instead (and is what several hosts need).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from sluicegate.policies.windows import SLICES, Item, Reading, Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS slices (
  key TEXT NOT NULL, slice INTEGER NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (key, slice)
) WITHOUT ROWID
"""


class SharedFileCounters:
    def __init__(self, path: str) -> None:
        # Autocommit mode: the transactions below are opened and closed by hand.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 2000")
        self._db.execute("PRAGMA journal_mode = WAL")
        # Counts live as long as the server: nothing is gained by waiting on the disk.
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(_SCHEMA)

    async def reserve(self, items: Sequence[Item]) -> Verdict:
        db = self._db
        now_ms = int(time.time() * 1000)  # one clock: the workers run on one host
        readings: list[Reading] = []
        allowed = True
        db.execute("BEGIN IMMEDIATE")
        try:
            for item in items:
                current = now_ms // item.slice_ms
                first = current - SLICES + 1
                db.execute("DELETE FROM slices WHERE key = ? AND slice < ?", (item.key, first))
                used, oldest = db.execute(
                    "SELECT COALESCE(SUM(value), 0), MIN(CASE WHEN value > 0 THEN slice END) "
                    "FROM slices WHERE key = ?",
                    (item.key,),
                ).fetchone()
                oldest = current if oldest is None else oldest
                if used + item.amount > item.limit:
                    allowed = False
                reset = ((oldest + SLICES) * item.slice_ms - now_ms) / 1000
                readings.append(Reading(used, reset, current))
            if allowed:
                db.executemany(
                    "INSERT INTO slices (key, slice, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (key, slice) DO UPDATE SET value = value + excluded.value",
                    [
                        (item.key, reading.slice, item.amount)
                        for item, reading in zip(items, readings, strict=True)
                        if item.amount
                    ],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return Verdict(allowed, readings)

    async def adjust(self, changes: Sequence[tuple[Item, int, int]]) -> None:
        self._db.executemany(
            "UPDATE slices SET value = MAX(value + ?, 0) WHERE key = ? AND slice = ?",
            [(delta, item.key, index) for item, index, delta in changes if delta],
        )

    async def close(self) -> None:
        self._db.close()
