"""``SLUICEGATE_KEY_SECRET``: per-key counters in Redis are named by the keyed hash the key
store uses, never by a plain hash of the client key; a multi-instance setup without the
secret is warned about at start-up."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from sluicegate.auth.keys import KEY_SECRET_ENV
from tests.conftest import wait_finished
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import postgres_schema

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY = "sk-key-secret-team-0001"
SECRET = "a-long-random-key-secret-for-the-tests-0001"


def _config(name: str, **gateway: Any) -> dict[str, Any]:
    rule = {
        "name": "chat",
        "match": {"models": ["chat"]},
        "targets": [{"service": "m"}],
        "policies": {"rate_limit": {"requests": 100, "window": "1m", "per": "key"}},
    }
    return {
        "gateway": {"name": name, **gateway},
        "services": [{"name": "m", "provider": "mock"}],
        "rules": [rule],
        "consumers": [{"name": "team", "keys": [KEY]}],
    }


def test_per_key_counters_are_named_by_a_keyed_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_SECRET_ENV, SECRET)
    name = f"ks{uuid.uuid4().hex[:10]}"
    running = RunningGateway(_config(name, redis=REDIS_URL), keyless=False).start()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(
            f"{running.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        wait_finished(running.url, 1)
        names = [k.decode() for k in client.scan_iter(match=f"sg:rl:{{{name}}}:*:key:*")]
        assert names, "no per-key counter was written"
        plain = hashlib.sha256(KEY.encode()).hexdigest()[:16]
        keyed = hmac.new(SECRET.encode(), KEY.encode(), hashlib.sha256).hexdigest()[:16]
        assert not any(plain in n for n in names), names
        assert all(f":key:{keyed}:" in n for n in names), names
    finally:
        for found in client.scan_iter(match=f"sg:rl:{{{name}}}:*"):
            client.delete(found)
        client.close()
        running.stop()


@contextmanager
def _shared_state(kind: str) -> Iterator[dict[str, Any]]:
    """The gateway settings of a setup where several instances share state, or of one alone."""
    if kind == "redis":
        yield {"redis": REDIS_URL}
    elif kind == "postgres":
        with postgres_schema() as url:
            yield {"store": url}
    else:
        yield {}


@pytest.mark.parametrize("kind", ["redis", "postgres", "alone"])
def test_a_missing_key_secret_is_warned_about_where_instances_share_state(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.WARNING, logger="sluicegate")
    with _shared_state(kind) as shared:
        monkeypatch.delenv(KEY_SECRET_ENV, raising=False)
        RunningGateway(
            _config(f"ks{uuid.uuid4().hex[:10]}", **shared), keyless=False
        ).start().stop()
        warned = [r.getMessage() for r in caplog.records if KEY_SECRET_ENV in r.getMessage()]
        assert bool(warned) == (kind != "alone"), warned
        caplog.clear()
        monkeypatch.setenv(KEY_SECRET_ENV, SECRET)
        RunningGateway(
            _config(f"ks{uuid.uuid4().hex[:10]}", **shared), keyless=False
        ).start().stop()
        assert not any(KEY_SECRET_ENV in r.getMessage() for r in caplog.records)
