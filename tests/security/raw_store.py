"""Everything a store holds, read straight from the database, as one text to search."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg

from tests.fakes.stores import POSTGRES

_CAT = "import sys\nfor p in sys.argv[1:]:\n    sys.stdout.buffer.write(open(p, 'rb').read())"


def _sqlite(path: Path, attempts: int = 20) -> str:
    for attempt in range(attempts):
        try:
            return _sqlite_once(path)
        except sqlite3.OperationalError:
            # A running gateway may hold the file in a write or checkpoint for a moment.
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _sqlite_once(path: Path) -> str:
    # The files' bytes too (the write-ahead log included): a plaintext written once
    # would linger in a page after its row changed.
    files = sorted(str(f) for f in path.parent.glob(path.name + "*"))
    # Read by another process: closing a descriptor of the file here would drop the
    # POSIX locks that the SQLite connections of this process (a gateway) hold on it.
    raw = subprocess.run(
        [sys.executable, "-c", _CAT, *files], capture_output=True, check=True, timeout=30
    ).stdout.decode("latin-1")
    conn = sqlite3.connect(path, timeout=10)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()
    return raw + "\n".join(rows)


async def _postgres(schema: str) -> str:
    conn = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        rows = []
        for table in tables:
            name = f'"{schema}"."{table["table_name"]}"'
            rows += [r[0] for r in await conn.fetch(f"SELECT t::text FROM {name} t")]
    finally:
        await conn.close()
    return "\n".join(rows)


def dump(url: str) -> str:
    """Every row of every table of the store at ``url`` (a URL of ``tests.fakes.stores``)."""
    if url.startswith("sqlite:///"):
        return _sqlite(Path(url.removeprefix("sqlite:///")))
    schema = parse_qs(urlsplit(url).query)["search_path"][0]
    return asyncio.run(_postgres(schema))
