"""Both stores behave alike: migrations, CRUD, versions, names, the config version."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluicegate.errors import ConfigError
from sluicegate.stores import DuplicateName
from sluicegate.stores.base import StoreUnreachable
from sluicegate.stores.migrations import SCHEMA_VERSION
from sluicegate.stores.open import open_store
from sluicegate.stores.secrets import Vault
from sluicegate.stores.sqlite import SqliteStore
from tests.fakes.stores import BACKENDS, store_url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


def test_crud_versions_and_the_config_version(url: str) -> None:
    async def scenario() -> None:
        store = open_store(url)
        await store.open()
        try:
            assert await store.schema_version() == SCHEMA_VERSION
            assert await store.gateways() == ["default"]
            assert await store.config_version() == 0
            sid = str(uuid.uuid4())
            doc = {"provider": "mock", "headers": {"x": "1"}}
            created = await store.create("default", "service", sid, "svc", doc, ["a", "b"])
            assert (created.id, created.name, created.version) == (sid, "svc", 1)
            assert created.doc == doc and created.tags == ("a", "b")
            assert created.created_at == created.updated_at
            assert await store.config_version() == 1

            with pytest.raises(DuplicateName):
                await store.create("default", "service", str(uuid.uuid4()), "svc", doc, [])
            # The same name is fine for another kind.
            await store.create("default", "rule", str(uuid.uuid4()), "svc", {"targets": []}, [])

            updated = await store.update(
                "default", "service", sid, "svc2", {"provider": "x"}, [], 1
            )
            assert updated is not None and updated.version == 2 and updated.name == "svc2"
            assert updated.updated_at > created.updated_at
            stale = await store.update("default", "service", sid, "svc3", {}, [], 1)
            assert stale is None
            assert not await store.delete("default", "service", sid, 1)
            assert [(r.kind, r.name) for r in await store.entities("default")] == [
                ("service", "svc2"),
                ("rule", "svc"),
            ]
            assert await store.delete("default", "service", sid, 2)
            assert [r.kind for r in await store.entities("default")] == ["rule"]
            assert await store.config_version() == 4  # three writes and a delete

            await store.ensure_gateway("team-a")
            await store.ensure_gateway("team-a")
            assert await store.gateways() == ["default", "team-a"]
            assert await store.entities("team-a") == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_instances_starting_together_migrate_once(url: str) -> None:
    async def scenario() -> None:
        stores = [open_store(url) for _ in range(4)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            for store in stores:
                assert await store.schema_version() == SCHEMA_VERSION
            assert await stores[0].gateways() == ["default"]
        finally:
            for store in stores:
                await store.close()
        again = open_store(url)
        await again.open()  # reopening an up-to-date store changes nothing
        assert await again.config_version() == 0
        await again.close()

    asyncio.run(scenario())


def test_store_urls() -> None:
    assert open_store("sqlite:///rel.db").path == "rel.db"  # type: ignore[attr-defined]
    assert open_store("sqlite:////abs/x.db").path == "/abs/x.db"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="use sqlite"):
        open_store("mysql://x")


def test_vault_round_trips_and_refuses_bad_keys() -> None:
    from cryptography.fernet import Fernet

    vault = Vault(Fernet.generate_key().decode())
    sealed = vault.seal({"header_name": "Authorization", "header_value": "Bearer s3cret"})
    assert sealed["header_name"] == "Authorization"
    assert "s3cret" not in str(sealed)
    assert vault.open(sealed, "x")["header_value"] == "Bearer s3cret"
    with pytest.raises(ConfigError, match="cannot decrypt"):
        Vault(Fernet.generate_key().decode()).open(sealed, "x")
    with pytest.raises(ConfigError, match="is not set"):
        Vault(None).open(sealed, "x")
    with pytest.raises(ConfigError, match="urlsafe base64"):
        Vault("not-a-key")


def test_a_create_in_a_gateway_the_store_has_not_seen_makes_it_in_one_transaction(
    url: str,
) -> None:
    async def scenario() -> None:
        store = open_store(url)
        await store.open()
        try:
            made = await store.create("team-z", "gateway", str(uuid.uuid4()), "team-z", {}, [])
            assert made.gateway == "team-z"
            assert await store.gateways() == ["default", "team-z"]
            assert [r.name for r in await store.entities("team-z")] == ["team-z"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_store_that_cannot_answer_says_so(tmp_path: Path) -> None:
    """A SQLite file locked past the busy timeout (or unreadable, or full) is
    ``StoreUnreachable``, which the Admin API answers with a 503; a write refused that way
    leaves nothing behind."""

    async def scenario() -> None:
        path = tmp_path / "locked.db"
        store = open_store(f"sqlite:///{path}")
        await store.open()
        assert isinstance(store, SqliteStore)
        await store._run(lambda conn: conn.execute("PRAGMA busy_timeout = 50"))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the file
        try:
            with pytest.raises(StoreUnreachable):
                await store.create("default", "service", str(uuid.uuid4()), "s", {}, [])
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert await store.entities("default") == []
        await store.close()

    asyncio.run(scenario())
