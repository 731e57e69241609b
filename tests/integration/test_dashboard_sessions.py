"""A dashboard logout holds everywhere: on every instance that shares the store (or Redis),
and after a restart, until the session would have expired anyway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

ADMIN_KEY = "adm-dashboard-sessions-01"
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


def _config(**gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"admin_key": ADMIN_KEY, **gateway},
        "audit": {"enabled": False},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "targets": [{"service": "demo"}]}],
    }


def _login(gateway: RunningGateway) -> tuple[dict[str, str], str]:
    answer = httpx.post(gateway.url + "/ui/api/login", json={"key": ADMIN_KEY})
    assert answer.status_code == 200, answer.text
    return {"sluicegate_ui": answer.cookies["sluicegate_ui"]}, answer.json()["csrf"]


def _opens(gateway: RunningGateway, cookies: dict[str, str]) -> int:
    return httpx.get(gateway.url + "/ui/admin/rules", cookies=cookies).status_code


def _logout(gateway: RunningGateway, cookies: dict[str, str], csrf: str) -> None:
    answer = httpx.post(
        gateway.url + "/ui/api/logout", cookies=cookies, headers={"x-csrf-token": csrf}
    )
    assert answer.status_code == 204, answer.text


def _ends_everywhere(config: dict[str, Any]) -> None:
    one = RunningGateway(config).start()
    two = RunningGateway(config).start()
    try:
        cookies, csrf = _login(one)
        kept, _ = _login(one)
        assert _opens(one, cookies) == 200 and _opens(two, cookies) == 200
        _logout(one, cookies, csrf)
        assert _opens(one, cookies) == 401
        assert _opens(two, cookies) == 401  # the other instance knows at once
        session = httpx.get(two.url + "/ui/api/session", cookies=cookies).json()
        assert session == {"logged_in": False}
        assert _opens(two, kept) == 200  # another session goes on
        one.stop()
        again = RunningGateway(config).start()  # a restart remembers it too
        try:
            assert _opens(again, cookies) == 401
            assert _opens(again, kept) == 200
        finally:
            again.stop()
    finally:
        one.stop()
        two.stop()


def test_a_logout_ends_the_session_on_every_instance_of_a_store(url: str) -> None:
    _ends_everywhere(_config(store=url))


def test_a_logout_ends_the_session_on_every_instance_of_a_redis() -> None:
    _ends_everywhere(_config(redis=REDIS))
