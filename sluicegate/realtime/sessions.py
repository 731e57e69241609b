"""The realtime sessions each consumer holds open (``realtime_sessions``): counted in this
process, or, with ``gateway.redis``, across every instance on that Redis.

In Redis a consumer's open sessions are a sorted set, each session's score the time its
lease ends. An instance renews its sessions' leases while they run and removes each when
it ends; a session of an instance that died without saying so stops counting when its
lease runs out (``LEASE``). One script counts and admits, so two instances never both
take the last place. When Redis cannot be reached the count falls back to this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sluicegate.errors import RateLimited
from sluicegate.stores.redis_client import RedisConnection, connect_redis

log = logging.getLogger("sluicegate.realtime")

LEASE = 30.0  # seconds a session counts without its instance renewing it

# KEYS[1]: the consumer's sessions. ARGV: the session's id, the lease (ms), the most open.
_BEGIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class TooManySessions(RateLimited):
    default_code = "too_many_sessions"


def _refusal(most: int) -> TooManySessions:
    plural = "" if most == 1 else "s"
    return TooManySessions(
        f"This consumer may hold {most} realtime session{plural} open at once "
        f"(realtime_sessions); close one first.",
        headers={"retry-after": "1"},
    )


@dataclass(slots=True)
class Seat:
    """One admitted session: where it is counted, and the task renewing its lease."""

    gateway: str
    consumer: str
    shared: str | None = None  # its id in Redis; None: counted in this process
    renewing: asyncio.Task[None] | None = None


class Sessions:
    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}
        self._redis: RedisConnection | None = None
        self._url: str | None = None
        self._begin: Any = None
        self._renew: Any = None

    def _client(self, url: str) -> None:
        # Made on first use, inside the event loop the client belongs to.
        if self._url != url:
            self._redis = connect_redis(url, socket_connect_timeout=0.5, socket_timeout=0.5)
            client: Any = self._redis.client
            self._begin = client.register_script(_BEGIN)
            self._renew = client.register_script(_RENEW)
            self._url = url

    async def begin(self, gateway: str, consumer: str, most: int | None, redis: str | None) -> Seat:
        """Count one more session, or refuse it when ``most`` are open already."""
        if most is not None and redis is not None:
            self._client(redis)
            key = f"sluicegate:realtime:{{{gateway}}}:{consumer}"
            sid = secrets.token_hex(8)
            try:
                admitted = await self._begin(keys=[key], args=[sid, int(LEASE * 1000), most])
            except Exception as exc:  # Redis away: this process's count stands in
                log.warning(
                    "realtime session count in Redis failed (%s); counting locally",
                    type(exc).__name__,
                )
            else:
                if not admitted:
                    raise _refusal(most)
                seat = Seat(gateway, consumer, sid)
                seat.renewing = asyncio.ensure_future(self._keep(key, sid))
                return seat
        counted = (gateway, consumer)
        count = self._open.get(counted, 0)
        if most is not None and count >= most:
            raise _refusal(most)
        self._open[counted] = count + 1
        return Seat(gateway, consumer)

    async def _keep(self, key: str, sid: str) -> None:
        while True:
            await asyncio.sleep(LEASE / 3)
            with contextlib.suppress(Exception):
                await self._renew(keys=[key], args=[sid, int(LEASE * 1000)])

    async def end(self, seat: Seat) -> None:
        if seat.shared is None:
            counted = (seat.gateway, seat.consumer)
            count = self._open.get(counted, 0) - 1
            if count > 0:
                self._open[counted] = count
            else:
                self._open.pop(counted, None)
            return
        if seat.renewing is not None:
            seat.renewing.cancel()
        assert self._redis is not None
        key = f"sluicegate:realtime:{{{seat.gateway}}}:{seat.consumer}"
        with contextlib.suppress(Exception):  # the lease runs out on its own
            await self._redis.client.zrem(key, seat.shared)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
            self._redis = None
