"""MCP session records in a file that the workers of one ``serve --workers N`` share.

Without Redis, each worker would know only the sessions it opened, and a client whose
next request lands on another worker would be told that its session is gone. The
records live instead in a SQLite file in the run's folder (``sluicegate.workers``),
with the same idle expiry as in Redis; a session's use is one small local transaction.
"""

from __future__ import annotations

import sqlite3
import time

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions "
    "(id TEXT PRIMARY KEY, used REAL NOT NULL, record BLOB NOT NULL) WITHOUT ROWID"
)


class SessionFile:
    def __init__(self, path: str, idle: float) -> None:
        self.idle = idle
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 2000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")  # records live as long as the run
        self._db.execute(_SCHEMA)

    def get(self, session_id: str) -> bytes | None:
        """The record, its idle time renewed; None when unknown or idle too long."""
        now = time.time()  # one clock: the workers run on one host
        found = self._db.execute(
            "UPDATE sessions SET used = ? WHERE id = ? AND used >= ? RETURNING record",
            (now, session_id, now - self.idle),
        ).fetchone()
        return bytes(found[0]) if found is not None else None

    def put(self, session_id: str, record: bytes) -> None:
        now = time.time()
        self._db.execute("DELETE FROM sessions WHERE used < ?", (now - self.idle,))
        self._db.execute(
            "INSERT OR REPLACE INTO sessions (id, used, record) VALUES (?, ?, ?)",
            (session_id, now, record),
        )

    def drop(self, session_id: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def close(self) -> None:
        self._db.close()
