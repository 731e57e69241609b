"""One Redis URL to a client: standalone, TLS, Sentinel or Cluster (``gateway.redis``).

```text
redis://[user:password@]host:6379/0                      one server
rediss://[user:password@]host:6380/0?ssl_ca_certs=ca.pem  the same over TLS
unix:///run/redis.sock?db=0                               a local socket
redis+sentinel://[user:password@]h1:26379,h2:26379/mymaster[/0]
rediss+sentinel://…                                       TLS to the sentinels and the master
redis+cluster://[user:password@]h1:6379,h2:6379           Redis Cluster (rediss+cluster:// over TLS)
```

The user and password are those of the data nodes (the master for Sentinel);
``?sentinel_password=`` (and ``sentinel_username``) authenticate to sentinels
that need it. Other query parameters are redis-py's connection options
(``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``,
``ssl_check_hostname``, ``socket_timeout``, …).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)

# Read from the query, never passed to the data nodes' connections.
_SENTINEL_ONLY = ("sentinel_password", "sentinel_username")


def check_redis_url(url: str) -> None:
    """Raise ``ValueError`` saying what is wrong with a ``gateway.redis`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("must start with " + ", ".join(f"{s}://" for s in SCHEMES))
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis.sock")
        return
    hosts = _hosts(parts.netloc)
    if not hosts:
        raise ValueError("names no host, e.g. redis://127.0.0.1:6379/0")
    if parts.scheme.endswith("+sentinel"):
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError("a Sentinel URL names the master after the hosts: …:26379/mymaster")
        if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
            raise ValueError("the path of a Sentinel URL is /service_name or /service_name/db")
    elif len(hosts) > 1 and not parts.scheme.endswith("+cluster"):
        raise ValueError("names several hosts: use redis+sentinel:// or redis+cluster://")


def _hosts(netloc: str) -> list[tuple[str, int]]:
    where = netloc.rpartition("@")[2]
    found: list[tuple[str, int]] = []
    for item in where.split(","):
        if not item:
            continue
        if item.startswith("["):  # [::1]:6379
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, _, port = item.partition(":")
        if port and not port.isdigit():
            raise ValueError(f"the port '{port}' is not a number")
        found.append((host, int(port) if port else 6379))
    return found


class RedisConnection:
    """A client and what must be closed with it (a Sentinel's own connections)."""

    def __init__(self, client: Any, others: list[Any] | None = None, cluster: bool = False) -> None:
        self.client = client
        self.cluster = cluster  # shards that cannot run a command over all keys (FT.SEARCH)
        self._others = others or []

    async def close(self) -> None:
        await self.client.aclose()
        for other in self._others:
            await other.aclose()


def connect_redis(url: str, **options: Any) -> RedisConnection:
    """A client for ``url``; ``options`` (timeouts, …) apply to every connection it makes.

    No connection is opened here: the first command does that, inside the
    event loop that will use the client.
    """
    check_redis_url(url)
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss", "unix"):
        import redis.asyncio as redis

        return RedisConnection(redis.Redis.from_url(url, **options))
    tls = parts.scheme.startswith("rediss")
    query = dict(parse_qsl(parts.query))
    sentinel_auth = {
        k.removeprefix("sentinel_"): query.pop(k) for k in _SENTINEL_ONLY if k in query
    }
    # redis-py's own parser gives the query's options their types (db, timeouts, …).
    from redis.asyncio.connection import parse_url

    kwargs: dict[str, Any] = dict(parse_url("redis://x/?" + urlencode(query))) if query else {}
    kwargs.pop("host", None)
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    kwargs.update(options)
    hosts = _hosts(parts.netloc)
    if parts.scheme.endswith("+cluster"):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        kwargs.pop("db", None)  # a cluster has only db 0
        nodes = [ClusterNode(host, port) for host, port in hosts]
        return RedisConnection(RedisCluster(startup_nodes=nodes, ssl=tls, **kwargs), cluster=True)
    from redis.asyncio import sentinel as sentinels

    make_sentinel: Any = sentinels.Sentinel  # untyped in redis-py

    service, _, db = parts.path.strip("/").partition("/")
    if db:
        kwargs["db"] = int(db)
    # The sentinels get the timeouts and TLS settings, not the data nodes' credentials.
    sentinel_kwargs: dict[str, Any] = {
        k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl_"))
    }
    sentinel_kwargs.update(sentinel_auth)
    if tls:
        sentinel_kwargs["ssl"] = True
        kwargs["ssl"] = True
    sentinel = make_sentinel(hosts, sentinel_kwargs=sentinel_kwargs, **kwargs)
    return RedisConnection(sentinel.master_for(unquote(service)), list(sentinel.sentinels))


def redact_redis_url(url: str) -> str:
    """``url`` with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, where = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{where}"))
