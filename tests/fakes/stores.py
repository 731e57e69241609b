"""Store URLs for tests: a SQLite file in a temporary folder, or a PostgreSQL schema of its own."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

POSTGRES = os.environ.get("SLUICEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards; yields a URL that uses it."""
    schema = "sg_" + secrets.token_hex(6)
    try:
        asyncio.run(_execute(f"CREATE SCHEMA {schema}"))
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable ({exc}); scripts/ensure-services.sh starts it")
    sep = "&" if "?" in POSTGRES else "?"
    try:
        yield f"{POSTGRES}{sep}search_path={schema}"
    finally:
        asyncio.run(_execute(f"DROP SCHEMA {schema} CASCADE"))


@contextmanager
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sluicegate.db'}"
    else:
        with postgres_schema() as url:
            yield url
