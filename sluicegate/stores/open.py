"""The store a URL names: the one place that knows every backend (base.py knows none)."""

from __future__ import annotations

from sluicegate.errors import ConfigError
from sluicegate.stores.base import Store


def open_store(url: str) -> Store:
    """A store for ``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        from sluicegate.stores.sqlite import SqliteStore

        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError([f"gateway.store: '{url}' names no file"])
        return SqliteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from sluicegate.stores.postgres import PostgresStore

        return PostgresStore(url)
    raise ConfigError(
        [f"gateway.store: use sqlite:///file.db or postgresql://user@host/db, not '{url}'"]
    )
