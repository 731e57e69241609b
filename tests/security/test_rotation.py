"""``rotate_store`` on SQLite and PostgreSQL: every secret under the new key, concurrent
writes kept, idempotent; and the keys ``Vault`` accepts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import ConfigError
from sluicegate.stores.base import DEFAULT_GATEWAY, Record, Store
from sluicegate.stores.open import open_store
from sluicegate.stores.secrets import (
    MASTER_KEY_ENV,
    PREVIOUS_KEYS_ENV,
    Vault,
    generate_key,
    rotate_store,
)
from tests.fakes.stores import BACKENDS, store_url

U1, S1, S2 = (str(uuid.uuid4()) for _ in range(3))
POOL_SECRET = "Bearer pool-secret-7d1e5a0c"
LEGACY_SECRET = "legacy-plaintext-3b9f01"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


class RacingStore:
    """The real store, where another writer commits once between a read and the next write."""

    def __init__(self, store: Store, other: Callable[[], Awaitable[None]]) -> None:
        self.store = store
        self.other: Callable[[], Awaitable[None]] | None = other

    async def entities(self, gateway: str) -> list[Record]:
        records = await self.store.entities(gateway)
        if self.other is not None:
            other, self.other = self.other, None
            await other()
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def by_name(records: list[Record]) -> dict[str, Record]:
    return {r.name: r for r in records}


def test_rotation_re_encrypts_everything_keeps_a_concurrent_write_and_is_idempotent(
    url: str,
) -> None:
    old, new = generate_key(), generate_key()
    before = Vault(old)

    async def run() -> None:
        store = open_store(url)
        await store.open()
        try:
            await store.ensure_gateway(DEFAULT_GATEWAY)
            header = {**before.encrypt(POOL_SECRET), "template": "${POOL_SECRET}"}
            pool = {
                "targets": [{"url": "http://127.0.0.1:9"}],
                "credentials": {"header_name": "Authorization", "header_value": header},
            }
            await store.create(DEFAULT_GATEWAY, "upstream", U1, "pool", pool, [])
            # Written by a version that stored secrets in plaintext: encrypted by rotation.
            legacy = {
                "provider": "openai",
                "credentials": {"param_name": "api-key", "param_value": LEGACY_SECRET},
            }
            await store.create(DEFAULT_GATEWAY, "service", S1, "legacy", legacy, [])
            await store.create(DEFAULT_GATEWAY, "service", S2, "plain", {"provider": "mock"}, [])

            async def edit_pool() -> None:  # an Admin API write of an instance on the old key
                current = by_name(await store.entities(DEFAULT_GATEWAY))["pool"]
                doc = {**current.doc, "description": "edited meanwhile"}
                doc["credentials"] = {
                    **doc["credentials"],
                    "header_value": {**before.encrypt(POOL_SECRET), "template": "${POOL_SECRET}"},
                }
                updated = await store.update(
                    DEFAULT_GATEWAY, "upstream", U1, "pool", doc, [], current.version
                )
                assert updated is not None

            rotating = Vault(new, [old])
            done = await rotate_store(RacingStore(store, edit_pool), rotating, DEFAULT_GATEWAY)  # type: ignore[arg-type]
            assert done.attempts == 2  # the first batch was stale and wrote nothing
            assert sorted(done.fields) == [
                "services/legacy.credentials.param_value",
                "upstreams/pool.credentials.header_value",
            ]
            assert done.entities == 2

            records = by_name(await store.entities(DEFAULT_GATEWAY))
            assert records["pool"].doc["description"] == "edited meanwhile"
            only_new = Vault(new)
            creds = only_new.open(records["pool"].doc["credentials"], "pool")
            assert creds["header_value"] == POOL_SECRET
            assert records["pool"].doc["credentials"]["header_value"]["template"] == (
                "${POOL_SECRET}"
            )
            legacy_creds = records["legacy"].doc["credentials"]
            assert LEGACY_SECRET not in str(legacy_creds)
            assert only_new.open(legacy_creds, "legacy")["param_value"] == LEGACY_SECRET
            with pytest.raises(ConfigError, match=r"upstreams/pool\.credentials\.header_value"):
                before.open(records["pool"].doc["credentials"], "upstreams/pool.credentials")

            version = await store.config_version()
            again = await rotate_store(store, rotating, DEFAULT_GATEWAY)
            assert again.fields == [] and again.entities == 0
            assert await store.config_version() == version  # nothing written, nobody reloads
        finally:
            await store.close()

    asyncio.run(run())


def test_a_secret_no_key_opens_stops_rotation_before_any_write(url: str) -> None:
    async def run() -> None:
        store = open_store(url)
        await store.open()
        try:
            await store.ensure_gateway(DEFAULT_GATEWAY)
            lost = Vault(generate_key()).encrypt(POOL_SECRET)
            doc = {"provider": "openai", "credentials": {"header_value": lost}}
            await store.create(DEFAULT_GATEWAY, "service", S1, "lost", doc, [])
            ok = {"provider": "openai", "credentials": {"param_value": LEGACY_SECRET}}
            await store.create(DEFAULT_GATEWAY, "service", S2, "ok", ok, [])
            version = await store.config_version()
            with pytest.raises(ConfigError) as refused:
                await rotate_store(store, Vault(generate_key()), DEFAULT_GATEWAY)
            assert "services/lost.credentials.header_value" in str(refused.value)
            assert POOL_SECRET.split()[1] not in str(refused.value)
            assert await store.config_version() == version
            stored = by_name(await store.entities(DEFAULT_GATEWAY))["ok"]
            assert stored.doc["credentials"]["param_value"] == LEGACY_SECRET  # untouched
        finally:
            await store.close()

    asyncio.run(run())


def test_vault_keys_from_the_environment() -> None:
    old, new = generate_key(), generate_key()
    sealed = Vault(old).seal({"header_value": POOL_SECRET})
    both = Vault.from_env({MASTER_KEY_ENV: new, PREVIOUS_KEYS_ENV: f" {generate_key()}, {old} ,"})
    assert both.open(sealed, "x")["header_value"] == POOL_SECRET
    assert not both.current(sealed["header_value"])
    assert both.current(both.seal({"header_value": "y"})["header_value"])
    with pytest.raises(ConfigError, match=f"{MASTER_KEY_ENV} or {PREVIOUS_KEYS_ENV}"):
        Vault(new, [generate_key()]).open(sealed, "x")
    # Old keys only decrypt: without a current key nothing could be written.
    with pytest.raises(ConfigError, match=f"{MASTER_KEY_ENV} is not"):
        Vault.from_env({PREVIOUS_KEYS_ENV: old})
    broken = old[:-6] + "!!!!!="
    with pytest.raises(ConfigError) as refused:
        Vault(new, [old, broken])
    assert f"{PREVIOUS_KEYS_ENV} (key 2)" in str(refused.value)
    assert broken not in str(refused.value) and old[:20] not in str(refused.value)


def test_generate_key_prints_a_usable_master_key(capsys: pytest.CaptureFixture[str]) -> None:
    from sluicegate.cli import main

    assert main(["secrets", "generate-key"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["secrets", "generate-key"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second
    assert Vault(first).enabled and Vault(second, [first]).enabled
