"""The lean Redis client of the rate limiter (stores/resp.py), against the real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from sluicegate.errors import RedisCallFailed
from sluicegate.stores.resp import Resp, Script, _Protocol, lean_target

URL = "redis://127.0.0.1:6379/0"


def key() -> str:
    return f"sg:test:resp:{uuid.uuid4().hex}"


def test_lean_target_takes_plain_urls_only() -> None:
    assert lean_target("redis://127.0.0.1:6379/0") == ("127.0.0.1", 6379, 0, None, None)
    assert lean_target("redis://u:p%40ss@h:7000/3") == ("h", 7000, 3, "u", "p@ss")
    assert lean_target("redis://:secret@h") == ("h", 6379, 0, None, "secret")
    for other in (
        "rediss://h:6380/0",
        "unix:///run/redis.sock",
        "redis://h:6379/0?socket_timeout=2",
        "redis+cluster://a:1,b:2",
        "redis+sentinel://h:26379/main",
        "redis://h:6379/zero",
    ):
        assert lean_target(other) is None, other
    with pytest.raises(ValueError):
        Resp("rediss://h:6380/0")


def test_concurrent_calls_share_one_connection_and_keep_their_order() -> None:
    k = key()

    async def run() -> list[object]:
        client = Resp(URL)
        try:
            return list(await asyncio.gather(*(client.call("INCR", k) for _ in range(300))))
        finally:
            await client.call("DEL", k)
            await client.close()

    assert asyncio.run(run()) == list(range(1, 301))  # each call got its own answer, in order


def test_a_fragmented_answer_is_put_together() -> None:
    async def run() -> list[object]:
        proto = _Protocol()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        proto.waiting.extend(futures)
        wire = b"*3\r\n:1\r\n:25\r\n$5\r\nhello\r\n+OK\r\n$-1\r\n"
        for i in range(len(wire)):  # one byte at a time
            proto.data_received(wire[i : i + 1])
        return [f.result() for f in futures]

    assert asyncio.run(run()) == [[1, 25, b"hello"], "OK", None]


def test_error_replies_raise_and_the_connection_goes_on() -> None:
    k = key()

    async def run() -> object:
        client = Resp(URL)
        try:
            await client.call("HSET", k, "f", "1")
            with pytest.raises(RedisCallFailed, match="WRONGTYPE"):
                await client.call("INCR", k)
            return await client.call("HGET", k, "f")
        finally:
            await client.call("DEL", k)
            await client.close()

    assert asyncio.run(run()) == b"1"


def test_an_unknown_script_is_sent_whole_once_then_run_by_digest() -> None:
    k = key()
    # A source no other test loads: Redis does not know its digest yet.
    source = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"

    async def run() -> tuple[object, object, object]:
        client = Resp(URL)
        script = Script(client, source)
        try:
            first = await script(keys=[k], args=[5])
            second = await script(keys=[k], args=[2])
            known = await client.call("SCRIPT", "EXISTS", hashlib.sha1(source.encode()).hexdigest())
            return first, second, known
        finally:
            await client.call("DEL", k)
            await client.close()

    assert asyncio.run(run()) == (5, 7, [1])


def test_a_closed_connection_is_reopened_by_the_next_call() -> None:
    async def run() -> object:
        client = Resp(URL)
        try:
            own = await client.call("CLIENT", "ID")
            killer = redis.Redis(host="127.0.0.1", port=6379)
            assert killer.client_kill_filter(_id=str(own)) == 1
            killer.close()
            await asyncio.sleep(0.05)  # the close reaches the client
            return await client.call("PING")
        finally:
            await client.close()

    assert asyncio.run(run()) == "PONG"


def test_the_database_of_the_url_is_selected() -> None:
    k = key()

    async def run() -> None:
        client = Resp("redis://127.0.0.1:6379/3")
        try:
            await client.call("SET", k, "here")
        finally:
            await client.close()

    asyncio.run(run())
    db3 = redis.Redis(host="127.0.0.1", port=6379, db=3)
    db0 = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        assert db3.get(k) == b"here"
        assert db0.get(k) is None
    finally:
        db3.delete(k)
        db3.close()
        db0.close()


def test_a_refused_password_fails_the_call_and_never_leaves_a_connection() -> None:
    async def run() -> tuple[str, str]:
        # The test Redis has no password: AUTH with one is an error reply.
        client = Resp("redis://:not-the-password@127.0.0.1:6379/0")
        errors = []
        for _ in range(2):  # the second call logs in afresh rather than reusing the first
            try:
                await client.call("PING")
            except RedisCallFailed as exc:
                errors.append(str(exc))
        await client.close()
        return errors[0], errors[1]

    first, second = asyncio.run(run())
    assert "AUTH" in first or "password" in first.lower()
    assert first == second


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_a_server_that_does_not_answer_fails_the_call_in_time(silent_server: int) -> None:
    async def run() -> float:
        client = Resp(f"redis://127.0.0.1:{silent_server}/0", timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RedisCallFailed, match="in time"):
            await client.call("PING")
        await client.close()
        return time.monotonic() - started

    assert 0.15 < asyncio.run(run()) < 2.0


def test_nothing_listening_fails_the_call() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])  # closed again: nothing listens there

    async def run() -> None:
        client = Resp(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(RedisCallFailed, match="cannot connect"):
            await client.call("PING")

    asyncio.run(run())
