"""``gateway.redis`` beyond one plain server: a password and TLS (``rediss://``), a Sentinel
(``redis+sentinel://``) and a Redis Cluster (``redis+cluster://``), each a real redis-server
of this test's own, through a running gateway whose limits fail closed (503 if Redis is not
reached, so a 200 then a 429 show the counters were shared in that Redis)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.policies.windows import Item, RedisCounters
from sluicegate.stores.redis_client import connect_redis, redact_redis_url
from tests.fakes.gateway import RunningGateway
from tests.fakes.redis_servers import Servers, redis_servers

KEY = "sk-topology-" + secrets.token_hex(8)
PASSWORD = "pw-" + secrets.token_hex(8)

Start = Callable[[dict[str, Any]], RunningGateway]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    with redis_servers(tmp_path) as running:
        yield running


def limited(redis: str) -> dict[str, Any]:
    """Three limits on every request, so the one script call carries three keys."""
    return {
        "gateway": {
            "name": "topo-" + secrets.token_hex(4),
            "redis": redis,
            "redis_failure": "closed",
            "limits": {"requests": 50, "window": "1m", "per": "global"},
        },
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": [{"service": "demo"}],
                "policies": {"rate_limit": {"requests": 20, "tokens": 100000, "window": "1m"}},
            }
        ],
        "consumers": [{"name": "team", "keys": [KEY], "limits": {"requests": 3, "window": "1m"}}],
    }


def statuses(gateway: RunningGateway, count: int) -> list[int]:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {KEY}"}
    return [
        httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers).status_code
        for _ in range(count)
    ]


def keys_in(url: str) -> list[bytes]:
    async def scan() -> list[bytes]:
        connection = connect_redis(url)
        try:
            return [k async for k in connection.client.scan_iter(match="sg:rl:*")]
        finally:
            await connection.close()

    return asyncio.run(scan())


def test_tls_with_a_password(servers: Servers, start_gateway: Start) -> None:
    port = servers.tls(PASSWORD)
    ca = servers.folder / "ca.pem"
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    gateway = start_gateway(limited(url))
    assert statuses(gateway, 4) == [200, 200, 200, 429]
    assert len(keys_in(url)) == 4  # gateway, rule (requests, tokens), consumer
    assert PASSWORD not in redact_redis_url(url)

    async def refused(bad: str) -> type[Exception]:
        counters = RedisCounters(bad)
        try:
            await counters.reserve([Item("sg:rl:{x}:probe", 10, 1, 1000)])
        except Exception as exc:
            return type(exc)
        finally:
            await counters.close()
        raise AssertionError(f"{redact_redis_url(bad)} was let in")

    assert "Authentication" in asyncio.run(refused(url.replace(PASSWORD, "wrong"))).__name__
    asyncio.run(refused(f"redis://:{PASSWORD}@127.0.0.1:{port}/0"))  # plain TCP to a TLS port
    asyncio.run(refused(f"rediss://:{PASSWORD}@127.0.0.1:{port}/0"))  # an unknown CA


def test_sentinel(servers: Servers, start_gateway: Start) -> None:
    master, sentinel = servers.sentinel(PASSWORD, "sg-main")
    url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{sentinel}/sg-main/0"
    gateway = start_gateway(limited(url))
    assert statuses(gateway, 4) == [200, 200, 200, 429]
    # The counters are on the master the Sentinel named.
    assert len(keys_in(f"redis://:{PASSWORD}@127.0.0.1:{master}/0")) == 4


def test_cluster_keeps_every_key_of_a_request_in_one_slot(
    servers: Servers, start_gateway: Start
) -> None:
    ports = servers.cluster()
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)
    gateway = start_gateway(limited(url))
    assert statuses(gateway, 4) == [200, 200, 200, 429]

    # The same script call with keys of no common hash tag is refused by the cluster:
    # what the gateway's {gateway} tag avoids.
    async def cross_slot() -> str:
        counters = RedisCounters(url)
        items = [Item(f"sg:test:{n}-{secrets.token_hex(4)}", 10, 1, 1000) for n in range(8)]
        try:
            await counters.reserve(items)
        except Exception as exc:
            return str(exc)
        finally:
            await counters.close()
        return "accepted"

    assert "slot" in asyncio.run(cross_slot()).lower()
