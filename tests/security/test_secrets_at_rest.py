"""Credentials stored through the Admin API are encrypted at rest, on SQLite and PostgreSQL,
and keep working through a rotation of the master key (``sluicegate secrets rotate``)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sluicegate.config.load import parse_config
from sluicegate.errors import ConfigError
from sluicegate.runtime import Runtime
from sluicegate.stores.base import DEFAULT_GATEWAY
from sluicegate.stores.open import open_store
from sluicegate.stores.secrets import MASTER_KEY_ENV, PREVIOUS_KEYS_ENV, Vault, generate_key
from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway
from tests.fakes.guarded_server import GuardedOpenAI
from tests.fakes.stores import BACKENDS, store_url
from tests.security.leaks import Leaks
from tests.security.raw_store import dump

ADMIN_KEY = "adm-at-rest-" + secrets.token_hex(8)
SECRET = "Bearer sk-at-rest-" + secrets.token_hex(12)
FIELD = "upstreams/vault-pool.credentials.header_value"


@pytest.fixture
def upstream() -> Iterator[GuardedOpenAI]:
    server = GuardedOpenAI(SECRET).start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


def config(url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, "store": url},
        "audit": {"spill_path": str(tmp_path / "spill.jsonl")},
        "consumers": [{"name": "team", "keys": [KEY]}],
    }


def keys(monkeypatch: pytest.MonkeyPatch, current: str, *previous: str) -> None:
    """The master keys the next gateway (or command) starts with."""
    monkeypatch.setenv(MASTER_KEY_ENV, current)
    if previous:
        monkeypatch.setenv(PREVIOUS_KEYS_ENV, ",".join(previous))
    else:
        monkeypatch.delenv(PREVIOUS_KEYS_ENV, raising=False)


def chat(gateway: RunningGateway) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "vault-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=20,
    )


def rotate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "secrets", "rotate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),  # the keys set by ``keys``
    )


def store_credential(gateway: RunningGateway, upstream: GuardedOpenAI) -> None:
    admin = httpx.Client(
        base_url=gateway.url + "/admin",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=20,
    )
    pool = {
        "name": "vault-pool",
        "targets": [{"url": upstream.url}],
        "credentials": {"header_name": "Authorization", "header_value": SECRET},
    }
    service = {
        "name": "vault-svc",
        "type": "upstream",
        "provider": "openai-compatible",
        "upstream": "vault-pool",
        "retries": 0,
    }
    rule = {
        "name": "vault-rule",
        "match": {"models": ["vault-model"]},
        "targets": [{"service": "vault-svc"}],
    }
    for kind, body in (("upstreams", pool), ("services", service), ("rules", rule)):
        created = admin.post(f"/{kind}", json=body)
        assert created.status_code == 201, created.text
        assert SECRET.split()[1] not in created.text


def sealed(url: str) -> str:
    """The stored token; the raw store holds the entity, but its secret in no readable form."""
    raw = dump(url)
    # The row is there, so that not finding the secret means something.
    assert "vault-pool" in raw and "encrypted" in raw
    leaks = Leaks()
    leaks.watch("upstream secret", SECRET)
    assert leaks.hits(raw) == []

    async def read() -> str:
        store = open_store(url)
        await store.open()
        try:
            records = await store.entities(DEFAULT_GATEWAY)
        finally:
            await store.close()
        pool = next(r for r in records if r.name == "vault-pool")
        token: str = pool.doc["credentials"]["header_value"]["encrypted"]
        return token

    return asyncio.run(read())


def refused_start(url: str, tmp_path: Path, vault: Vault) -> None:
    """A gateway with ``vault`` refuses to load the store, naming the field."""

    async def load() -> None:
        runtime = Runtime(parse_config(config(url, tmp_path), env={}), vault=vault)
        try:
            with pytest.raises(ConfigError) as refused:
                await runtime.load_store()
        finally:
            await runtime.close()
        assert FIELD in str(refused.value) and SECRET.split()[1] not in str(refused.value)

    asyncio.run(load())


def test_stored_credentials_are_encrypted_and_survive_master_key_rotation(
    url: str,
    tmp_path: Path,
    upstream: GuardedOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, new, wrong = generate_key(), generate_key(), generate_key()
    file = tmp_path / "gateway.yaml"
    file.write_text(yaml.safe_dump(config(url, tmp_path)))
    running: list[RunningGateway] = []

    def start(*keys_in_env: str) -> RunningGateway:
        keys(monkeypatch, *keys_in_env)
        gateway = RunningGateway(config(url, tmp_path), poll_interval=0.2).start()
        running.append(gateway)
        return gateway

    try:
        # Written through the Admin API under the old key; used at once.
        before = start(old)
        store_credential(before, upstream)
        assert chat(before).status_code == 200
        assert upstream.accepted == [SECRET]
        token = sealed(url)

        # The new key alone cannot read the store yet: rotation is what makes it work.
        refused_start(url, tmp_path, Vault(new))

        # A key that opens nothing: the command names the field, never the value,
        # and writes nothing.
        keys(monkeypatch, new, wrong)
        refused = rotate("--config", str(file))
        assert refused.returncode == 1
        assert FIELD in refused.stderr and "cannot decrypt" in refused.stderr
        assert SECRET.split()[1] not in refused.stdout + refused.stderr
        assert sealed(url) == token

        keys(monkeypatch, new, old)
        dry = rotate("--config", str(file), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "dry run: 1 secret field(s) in 1 entity" in dry.stdout
        caplog.set_level(logging.ERROR, logger="sluicegate")
        done = rotate("--config", str(file))
        assert done.returncode == 0, done.stderr
        assert f"~ {FIELD}" in done.stdout
        assert "re-encrypted 1 secret field(s) in 1 entity" in done.stdout
        assert SECRET.split()[1] not in done.stdout + done.stderr
        again = rotate("--store", url)
        assert again.returncode == 0, again.stderr
        assert "nothing written" in again.stdout  # idempotent
        assert sealed(url) != token

        # The instance still on the old key alone sees the rotation (a version bump),
        # refuses it by entity and field, and keeps serving its running config.
        deadline = time.monotonic() + 10
        while not any(FIELD in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the stale instance did not try the change"
            time.sleep(0.05)
        refusal = next(r.getMessage() for r in caplog.records if FIELD in r.getMessage())
        assert "refused" in refusal and MASTER_KEY_ENV in refusal
        assert SECRET.split()[1] not in caplog.text
        assert chat(before).status_code == 200

        # Fresh instances: the new key with the old one as previous, then the new key alone.
        assert chat(start(new, old)).status_code == 200
        assert chat(start(new)).status_code == 200
        assert upstream.accepted == [SECRET] * 4 and upstream.refused == 0
    finally:
        for gateway in running:
            gateway.stop()
