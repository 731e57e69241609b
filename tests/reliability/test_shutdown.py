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
