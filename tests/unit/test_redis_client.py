"""``gateway.redis`` URLs: what is accepted, which client each makes, the Cluster hash tag."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from sluicegate.config.load import parse_config
from sluicegate.errors import ConfigError
from sluicegate.policies.rate_limit import Estimate, Limit, Who, _items
from sluicegate.stores.redis_client import check_redis_url, connect_redis, redact_redis_url


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@redis:6379/2",
        "rediss://user:secret@redis.example.com:6380/0?ssl_ca_certs=/etc/ca.pem",
        "unix:///run/redis.sock?db=1",
        "redis+sentinel://:secret@s1:26379,s2:26379,s3/mymaster/0",
        "rediss+sentinel://s1:26379/mymaster?sentinel_password=x",
        "redis+cluster://n1:6379,n2:6379,[::1]:6379",
    ],
)
def test_accepted(url: str) -> None:
    check_redis_url(url)
    parse_config({"gateway": {"redis": url}}, env={})


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://redis:6379", "must start with redis://"),
        ("redis+sentinel://s1:26379", "names the master"),
        ("redis+sentinel://s1:26379/mymaster/zero", "/service_name/db"),
        ("redis://a:6379,b:6379/0", "names several hosts"),
        ("redis:///0", "names no host"),
        ("unix://", "socket path"),
        ("redis://h:six/0", "port 'six' is not a number"),
    ],
)
def test_refused_with_a_reason_and_never_the_url(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_redis_url(url)
    secret = "redis+sentinel://:hunter2-secret@s1:26379"
    with pytest.raises(ConfigError) as caught:
        parse_config({"gateway": {"redis": secret}}, env={})
    assert "hunter2" not in str(caught.value.issues)


def test_each_scheme_makes_its_client_without_connecting() -> None:
    async def kinds() -> list[str]:
        found = []
        for url in (
            "rediss://:pw@127.0.0.1:1/3?ssl_cert_reqs=none",
            "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/main/4?sentinel_password=spw",
            "redis+cluster://:pw@127.0.0.1:1,127.0.0.1:2",
        ):
            connection = connect_redis(url, socket_timeout=0.5)
            client = connection.client
            # The semantic cache asks this, not the URL, whether FT.SEARCH can span the keys.
            assert connection.cluster == isinstance(client, RedisCluster)
            if isinstance(client, RedisCluster):
                found.append("cluster")
            else:
                assert isinstance(client, Redis)
                options = client.connection_pool.connection_kwargs
                assert options["password"] == "pw" and options["socket_timeout"] == 0.5
                found.append(f"{type(client.connection_pool).__name__}:{options['db']}")
            await connection.close()
        return found

    assert asyncio.run(kinds()) == ["ConnectionPool:3", "SentinelConnectionPool:4", "cluster"]


def test_redacted() -> None:
    assert redact_redis_url("rediss://u:p4ss@h:6380/0") == "rediss://u:***@h:6380/0"
    assert redact_redis_url("redis://h:6379/0") == "redis://h:6379/0"


def test_every_key_of_a_request_shares_one_cluster_slot() -> None:
    limits = [
        Limit("gateway", "global", 100, None, 60.0),
        Limit("rule:chat", "consumer", 10, 1000, 60.0),
        Limit("consumer:team-a", "key", 5, None, 86400.0, usd=20.0),
        Limit("group:research", "model", None, 5000, 3600.0),
    ]
    who = Who("team-b", "team-a", "k1", "chat", "gpt-4o-mini")
    items, _, _ = _items(limits, who, Estimate(10, 20))
    assert len(items) == 6
    assert len({key_slot(item.key.encode()) for item in items}) == 1
    assert all(item.key.startswith("sg:rl:{team-b}:") for item in items)
