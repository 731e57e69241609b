"""``gateway.cors``: off by default; when on, only the listed origins get CORS headers,
on answers (streamed too), errors and preflights, and never on /admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.gateway import RunningGateway

KEY = "sk-cors-test-0001"
APP = "https://app.example.com"


def config(cors: dict[str, Any] | None) -> dict[str, Any]:
    gateway: dict[str, Any] = {"admin_key": "adm-cors-key-000001"}
    if cors is not None:
        gateway["cors"] = cors
    return {
        "gateway": gateway,
        "services": [{"name": "m", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "m"}]}],
        "consumers": [{"name": "web", "keys": [KEY]}],
    }


@pytest.fixture
def strict() -> Iterator[RunningGateway]:
    running = RunningGateway(config({"allow_origins": [APP], "max_age": "5m"})).start()
    yield running
    running.stop()


def preflight(gateway: RunningGateway, origin: str) -> httpx.Response:
    return httpx.options(
        f"{gateway.url}/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def chat(
    gateway: RunningGateway, origin: str, stream: bool = False, key: str = KEY
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Origin": origin, "Authorization": f"Bearer {key}"},
        json={"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_off_by_default() -> None:
    running = RunningGateway(config(None)).start()
    try:
        answer = chat(running, APP)
        assert answer.status_code == 200
        assert not [h for h in answer.headers if h.startswith("access-control-")]
        assert preflight(running, APP).status_code == 405
    finally:
        running.stop()


def test_an_allowed_origin(strict: RunningGateway) -> None:
    pre = preflight(strict, APP)
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == APP
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"]
    assert pre.headers["access-control-max-age"] == "300"
    assert pre.headers["vary"] == "origin"
    for answer in (chat(strict, APP), chat(strict, APP, stream=True), chat(strict, APP, key="bad")):
        assert answer.headers["access-control-allow-origin"] == APP
        assert "x-request-id" in answer.headers["access-control-expose-headers"]
        assert "access-control-allow-credentials" not in answer.headers
    assert chat(strict, APP, key="bad").status_code == 401  # a refusal the page can read


def test_another_origin_gets_nothing(strict: RunningGateway) -> None:
    evil = "https://evil.example.net"
    pre = preflight(strict, evil)
    assert pre.status_code == 204 and "access-control-allow-origin" not in pre.headers
    answer = chat(strict, evil)
    assert "access-control-allow-origin" not in answer.headers
    admin = httpx.get(
        f"{strict.url}/admin/services",
        headers={"Origin": APP, "Authorization": "Bearer adm-cors-key-000001"},
    )
    assert admin.status_code == 200 and "access-control-allow-origin" not in admin.headers


def test_any_origin() -> None:
    running = RunningGateway(config({"allow_origins": ["*"]})).start()
    try:
        assert chat(running, "https://anywhere.test").headers["access-control-allow-origin"] == "*"
    finally:
        running.stop()


def test_origins_are_checked() -> None:
    from sluicegate.config.load import parse_config
    from sluicegate.errors import ConfigError

    with pytest.raises(ConfigError, match="is not an origin"):
        parse_config(config({"allow_origins": ["app.example.com"]}), env={})
