"""SIGTERM while answers relayed byte for byte are still coming (speech audio through
``/v1/audio/speech``, and through native pass-through): at the end of the drain time they
are cut (never ended as if whole), each has its audit row saying ``shutting_down``, and the
process exits soon after instead of waiting for the provider."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fakes.gateway import free_port, serve_process
from tests.fakes.media_server import OPENAI_KEY, SPEECH_PARTS, FakeOpenAIMedia
from tests.fakes.realtime_server import INPUT, OUTPUT, REALTIME_KEY, FakeRealtime
from tests.integration.test_cli import wait_ready
from tests.reliability.conftest import AUTH, CLIENT_KEY, audited
from tests.security.leaks import Leaks

SPEECH = {"model": "tts-1", "voice": "alloy", "input": "hello", "response_format": "mp3"}


async def _streams(url: str, proc: subprocess.Popen[str]) -> list[tuple[str, bytes, bool]]:
    """Both streams; SIGTERM once each has begun. Each one's request id, bytes, and whether
    it was cut."""
    began = 0
    both_began = asyncio.Event()

    async def stream(client: httpx.AsyncClient, path: str) -> tuple[str, bytes, bool]:
        nonlocal began
        data = b""
        async with client.stream("POST", url + path, json=SPEECH, headers=AUTH) as answer:
            assert answer.status_code == 200
            try:
                async for chunk in answer.aiter_raw():
                    if not data:
                        began += 1
                        if began == 2:
                            both_began.set()
                    data += chunk
            except httpx.RemoteProtocolError:
                return answer.headers["x-request-id"], data, True
            return answer.headers["x-request-id"], data, False

    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(stream(client, path))
            for path in ("/v1/audio/speech", "/passthrough/oa/audio/speech")
        ]
        await asyncio.wait_for(both_began.wait(), 20)
        proc.send_signal(signal.SIGTERM)
        return list(await asyncio.gather(*tasks))


def test_byte_streams_are_cut_at_the_end_of_the_drain(tmp_path: Path, leaks: Leaks) -> None:
    fake = FakeOpenAIMedia().start()  # holds its last part for 10 s
    port = free_port()
    config = audited(
        tmp_path,
        {
            "gateway": {"listen": f"127.0.0.1:{port}", "drain_timeout": "1s"},
            "services": [
                {
                    "name": "oa",
                    "provider": "openai",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": fake.port,
                    "credentials": {
                        "header_name": "Authorization",
                        "header_value": f"Bearer {OPENAI_KEY}",
                    },
                }
            ],
            "rules": [
                {"name": "speak", "match": {"models": ["tts-1"]}, "targets": [{"service": "oa"}]}
            ],
            "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
        },
    )
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        started = time.monotonic()
        results = asyncio.run(_streams(url, proc))
        assert proc.wait(15) == 0
        stopped = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out, err = proc.communicate()
        leaks.scan("gateway stdout", out)
        leaks.scan("gateway stderr", err)
        fake.release.set()
        fake.stop()
    assert stopped < 6  # the drain (1 s) and a little, not the 10 s the provider would take
    whole = b"".join(SPEECH_PARTS)
    for _, data, cut in results:
        assert cut and data and whole.startswith(data) and data != whole
    with sqlite3.connect(tmp_path / "store.db") as db:
        rows = {
            rid: (endpoint, kind)
            for rid, endpoint, kind in db.execute(
                "SELECT request_id, endpoint, error_type FROM sluicegate_audit"
            )
        }
    (speech, _, _), (native, _, _) = results
    assert rows[speech] == ("audio.speech", "shutting_down")
    assert rows[native] == ("passthrough", "shutting_down")


def test_a_realtime_session_at_shutdown_is_closed_as_a_restart_and_recorded(
    tmp_path: Path, leaks: Leaks
) -> None:
    """A WebSocket is not drained (its client reconnects to another instance at once): it is
    closed with 1012 (service restart), its upstream socket too, and its audit row written
    with the tokens it had used."""
    fake = FakeRealtime().start()
    port = free_port()
    config = audited(
        tmp_path,
        {
            "gateway": {"listen": f"127.0.0.1:{port}", "drain_timeout": "5s"},
            "services": [
                {
                    "name": "rt",
                    "provider": "openai",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": fake.port,
                    "credentials": {
                        "header_name": "Authorization",
                        "header_value": f"Bearer {REALTIME_KEY}",
                    },
                }
            ],
            "rules": [
                {"name": "voice", "match": {"models": ["voice"]}, "targets": [{"service": "rt"}]}
            ],
            "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
        },
    )
    proc = serve_process(tmp_path, config)
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=voice"
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        headers = {**AUTH, "x-request-id": "rt-at-shutdown"}
        with connect(url, additional_headers=headers) as socket:
            assert orjson.loads(socket.recv(timeout=10))["type"] == "session.created"
            socket.send(orjson.dumps({"type": "response.create"}).decode())
            while orjson.loads(socket.recv(timeout=10))["type"] != "response.done":
                pass
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    socket.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out, err = proc.communicate()
        leaks.scan("gateway stdout", out)
        leaks.scan("gateway stderr", err)
    assert fake.closed == 1  # the upstream socket was closed too
    fake.stop()
    with sqlite3.connect(tmp_path / "store.db") as db:
        row = db.execute(
            "SELECT endpoint, status, input_tokens, output_tokens FROM sluicegate_audit "
            "WHERE request_id = 'rt-at-shutdown'"
        ).fetchone()
    assert row == ("realtime", 101, INPUT, OUTPUT)
