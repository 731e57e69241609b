"""Guessing the admin key: after 10 failed tries in a minute an address gets 429 with a
Retry-After that grows while the failures go on, on ``/admin`` and the dashboard's login
alike; other addresses are not held up, and one's success clears no one else's count.
And an admin key too short to resist guessing does not load."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluicegate.config.load import parse_config
from sluicegate.errors import ConfigError
from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-throttle-key-0001"
WRONG = "adm-throttle-key-0002"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    config = {
        "gateway": {"admin_key": ADMIN_KEY},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "targets": [{"service": "demo"}]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, address: str) -> httpx.Client:
    """A client whose requests come from ``address`` (any of 127.0.0.0/8 reaches loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=gateway.url, transport=transport, timeout=10)


def admin(http: httpx.Client, key: str) -> httpx.Response:
    return http.get("/admin/services", headers={"Authorization": f"Bearer {key}"})


def login(http: httpx.Client, key: str) -> httpx.Response:
    return http.post("/ui/api/login", json={"key": key})


def refused(answer: httpx.Response) -> int:
    """The Retry-After of a 429 for failed logins."""
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "too_many_failed_logins"
    return int(answer.headers["retry-after"])


def test_ten_failures_in_a_minute_lock_the_address_for_a_growing_time(
    gateway: RunningGateway,
) -> None:
    with client(gateway, "127.0.0.2") as guesser, client(gateway, "127.0.0.3") as owner:
        # Five against the Admin API, five at the dashboard's login: one count.
        for _ in range(5):
            assert admin(guesser, WRONG).status_code == 401
            assert login(guesser, WRONG).status_code == 401
        first = refused(admin(guesser, WRONG))
        assert first >= 1
        refused(login(guesser, WRONG))
        # Locked means locked: the right key gets no answer either (it would tell a guess).
        refused(admin(guesser, ADMIN_KEY))
        refused(login(guesser, ADMIN_KEY))
        # Another address is not held up, and its success clears nothing of the guesser's.
        assert admin(owner, ADMIN_KEY).status_code == 200
        assert login(owner, ADMIN_KEY).status_code == 200
        refused(admin(guesser, WRONG))
        # A request without any key is no guess: it is counted as nothing.
        assert owner.get("/admin/services").status_code == 401

        time.sleep(first + 0.2)
        assert admin(guesser, WRONG).status_code == 401  # tried, and failed again...
        second = refused(admin(guesser, WRONG))  # ...so the next lock is longer
        assert second > first
        time.sleep(second + 0.2)
        assert admin(guesser, ADMIN_KEY).status_code == 200  # the key works once the lock ends


def test_failures_spread_over_more_than_a_minute_are_not_locked(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluicegate.admin.throttle as throttle

    now = [time.monotonic()]
    monkeypatch.setattr(throttle, "_clock", lambda: now[0])
    with client(gateway, "127.0.0.4") as slow:
        for _ in range(30):  # one every seven seconds: never ten within a minute
            assert admin(slow, WRONG).status_code == 401
            now[0] += 7


def test_an_admin_key_shorter_than_16_characters_does_not_load(tmp_path: Path) -> None:
    config = {"gateway": {"admin_key": "x"}}
    with pytest.raises(ConfigError) as info:
        parse_config(config, env={})
    issues = "\n".join(info.value.issues)
    assert "gateway.admin_key" in issues and "16 characters" in issues
    assert "'x'" not in issues  # the value itself is never echoed
    assert parse_config({"gateway": {"admin_key": "a" * 16}}, env={}).config.gateway.admin_key
