"""SIGTERM while 200 streams are in flight: the listener closes at once (new connections are
refused), every stream already started ends whole, the process exits 0 within the grace
period, and every finished request has its audit row."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from tests.fakes.gateway import free_port, serve_process
from tests.integration.test_cli import wait_ready
from tests.reliability.conftest import AUTH, CLIENT_KEY, audited
from tests.security.leaks import Leaks

STREAMS = 200
WORDS = " ".join(f"w{i}" for i in range(15))  # 15 words at 100 ms: each stream takes ~2 s


async def _run(url: str, proc: subprocess.Popen[str]) -> tuple[list[str], list[str], float]:
    started = asyncio.Event()
    first_bytes = 0
    limits = httpx.Limits(max_connections=STREAMS + 10)

    async def stream(client: httpx.AsyncClient) -> tuple[str, str]:
        nonlocal first_bytes
        body = {
            "model": "m",
            "stream": True,
            "messages": [{"role": "user", "content": WORDS}],
        }
        async with client.stream(
            "POST", url + "/v1/chat/completions", json=body, headers=AUTH
        ) as answer:
            assert answer.status_code == 200
            text = ""
            async for chunk in answer.aiter_text():
                if not text:
                    first_bytes += 1
                    if first_bytes == STREAMS:
                        started.set()
                text += chunk
            return answer.headers["x-request-id"], text

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks = [asyncio.create_task(stream(client)) for _ in range(STREAMS)]
        await asyncio.wait_for(started.wait(), 20)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # The listener closes while the streams go on.
        while True:
            try:
                async with httpx.AsyncClient(timeout=2) as fresh:
                    await fresh.get(url + "/healthz")
            except httpx.TimeoutException:
                raise  # accepted and left hanging: neither refused nor served
            except httpx.TransportError:
                # Refused, or accepted in the instant before the listener closed and then
                # closed unanswered by the shutdown (a reset or an empty answer): not served.
                break
            assert time.monotonic() - signalled < 1.5, "new connections were still accepted"
            await asyncio.sleep(0.02)
        refused_after = time.monotonic() - signalled
        assert not all(task.done() for task in tasks), "the streams ended before the test looked"
        results = await asyncio.gather(*tasks)
    return [rid for rid, _ in results], [text for _, text in results], refused_after


def test_sigterm_during_200_streams(tmp_path: Path, leaks: Leaks) -> None:
    port = free_port()
    config = audited(
        tmp_path,
        {
            "gateway": {"listen": f"127.0.0.1:{port}"},
            "services": [
                {
                    "name": "slow",
                    "provider": "mock",
                    "mock_latency": "200ms",
                    "mock_token_delay": "100ms",
                }
            ],
            "rules": [{"name": "r", "targets": [{"service": "slow"}]}],
            "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
        },
    )
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        ids, texts, refused_after = asyncio.run(_run(url, proc))
        signalled = time.monotonic()
        assert proc.wait(15) == 0
        assert time.monotonic() - signalled < 10  # timeout_graceful_shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out, err = proc.communicate()
        leaks.scan("gateway stdout", out)
        leaks.scan("gateway stderr", err)
    assert refused_after < 1.5
    for text in texts:  # whole: every word, the final chunk and [DONE]
        assert text.rstrip().endswith("data: [DONE]"), text[-300:]
        assert '"content":" w14"' in text
    with sqlite3.connect(tmp_path / "store.db") as db:
        rows = db.execute("SELECT request_id, status FROM sluicegate_audit").fetchall()
    assert sorted(ids) == sorted(rid for rid, _ in rows)
    assert {status for _, status in rows} == {200}
    spill = tmp_path / "spill.jsonl"
    assert not spill.exists() or spill.stat().st_size == 0


LONG = " ".join(f"w{i}" for i in range(100))  # 100 words at 100 ms: 10 s, far past the drain


async def _cut_by_the_drain(url: str, proc: subprocess.Popen[str]) -> list[tuple[str, str]]:
    """Two long streams in each dialect and a short one; SIGTERM once all have begun. Each
    stream's request id and text."""
    began = 0
    all_began = asyncio.Event()

    async def stream(client: httpx.AsyncClient, path: str, words: str) -> tuple[str, str]:
        nonlocal began
        body = {
            "model": "m",
            "stream": True,
            "max_tokens": 500,
            "messages": [{"role": "user", "content": words}],
        }
        async with client.stream("POST", url + path, json=body, headers=AUTH) as answer:
            assert answer.status_code == 200
            text = ""
            async for chunk in answer.aiter_text():
                if not text:
                    began += 1
                    if began == 5:
                        all_began.set()
                text += chunk
            return answer.headers["x-request-id"], text

    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(stream(client, path, LONG))
            for path in ["/v1/chat/completions"] * 2 + ["/v1/messages"] * 2
        ]
        tasks.append(asyncio.create_task(stream(client, "/v1/chat/completions", "a b c d e")))
        await asyncio.wait_for(all_began.wait(), 20)
        proc.send_signal(signal.SIGTERM)
        return list(await asyncio.gather(*tasks))


def test_streams_still_running_when_the_drain_ends_get_an_error_event(
    tmp_path: Path, leaks: Leaks
) -> None:
    """SIGTERM with streams longer than gateway.drain_timeout (1 s): the short one ends whole;
    the long ones, at the drain's end, with the dialect's error event (503, code
    shutting_down) and an audit row saying so; the process exits 0 soon after."""
    port = free_port()
    config = audited(
        tmp_path,
        {
            "gateway": {"listen": f"127.0.0.1:{port}", "drain_timeout": "1s"},
            "services": [{"name": "slow", "provider": "mock", "mock_token_delay": "100ms"}],
            "rules": [{"name": "r", "targets": [{"service": "slow"}]}],
            "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
        },
    )
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        started = time.monotonic()
        results = asyncio.run(_cut_by_the_drain(url, proc))
        assert proc.wait(15) == 0
        stopped = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        out, err = proc.communicate()
        leaks.scan("gateway stdout", out)
        leaks.scan("gateway stderr", err)
    assert stopped < 6  # the drain (1 s) and a little, not the 10 s the streams would take
    (openai_1, _), (openai_2, _), (anthropic_1, _), (anthropic_2, _), (short, whole) = results
    assert whole.rstrip().endswith("data: [DONE]") and '"content":" e"' in whole
    for _, text in results[:2]:
        events = [e for e in text.split("\n\n") if e]
        assert '"content":" w1"' in text and "[DONE]" not in text
        error = orjson.loads(events[-1].removeprefix("data: "))["error"]
        assert error["type"] == "upstream_unavailable" and error["code"] == "shutting_down"
    for _, text in results[2:4]:
        events = [e for e in text.split("\n\n") if e]
        assert "message_stop" not in text
        name, data = events[-1].split("\n", 1)
        assert name == "event: error"
        error = orjson.loads(data.removeprefix("data: "))
        assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
    with sqlite3.connect(tmp_path / "store.db") as db:
        rows = dict(
            (
                (rid, (status, kind))
                for rid, status, kind in db.execute(
                    "SELECT request_id, status, error_type FROM sluicegate_audit"
                )
            )
        )
    assert rows[short] == (200, None)
    for rid in (openai_1, openai_2, anthropic_1, anthropic_2):
        assert rows[rid] == (503, "shutting_down")
