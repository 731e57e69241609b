"""The audit log loses no row of a finished request: not while PostgreSQL is away for ten
seconds, not when the gateway is stopped (SIGTERM) with requests in flight."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from tests.conftest import KEY
from tests.fakes.gateway import RunningGateway, free_port, serve_process
from tests.fakes.stores import postgres_schema
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_audit import gateway_config
from tests.integration.test_cli import wait_ready


def _ask(url: str, text: str, model: str = "mock-chat", stream: bool = False) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=20,
    )


async def _request_ids(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT request_id FROM sluicegate_audit")]
    finally:
        await conn.close()


def test_a_postgres_outage_of_ten_seconds_loses_no_row(tmp_path: Path) -> None:
    with postgres_schema() as direct:
        parts = urlsplit(direct)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).up()
        through = direct.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}", 1)
        gateway = RunningGateway(gateway_config(through, tmp_path), poll_interval=0.5).start()
        spill = tmp_path / "spill.jsonl"
        ids: list[str] = []
        try:
            metrics = gateway.runtime.metrics

            def load(seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    answer = _ask(gateway.url, f"n{len(ids)}", stream=len(ids) % 4 == 0)
                    assert answer.status_code == 200, answer.text  # never held up by the store
                    ids.append(answer.headers["x-request-id"])
                    time.sleep(0.02)

            load(2)
            proxy.down()
            outage = time.monotonic()
            load(10)
            assert spill.exists() and spill.stat().st_size > 0
            during = len(ids)
            proxy.up()
            load(2)
            deadline = time.monotonic() + 10
            while spill.stat().st_size and time.monotonic() < deadline:
                time.sleep(0.1)
            assert spill.stat().st_size == 0, "the spill file was not replayed"
            assert time.monotonic() - outage < 25
            assert metrics.audit_spilled.labels("default")._value.get() > 0
            assert metrics.audit_dropped.labels("default")._value.get() == 0
        finally:
            gateway.stop()
            proxy.stop()
        written = asyncio.run(_request_ids(direct))
        assert during > 100
        assert sorted(written) == sorted(ids)  # every one, once


def test_sigterm_with_requests_in_flight(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "audit.db"
    config = gateway_config(f"sqlite:///{db}", tmp_path)
    config["gateway"]["listen"] = f"127.0.0.1:{port}"
    config["services"].append(
        {"name": "slow", "provider": "mock", "mock_latency": "1500ms", "mock_token_delay": "50ms"}
    )
    config["rules"].append(
        {"name": "slow", "match": {"models": ["slow-chat"]}, "targets": [{"service": "slow"}]}
    )
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        quick = [_ask(url, f"quick {i}").headers["x-request-id"] for i in range(20)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            slow = [
                pool.submit(_ask, url, f"slow {i} words here", "slow-chat", i % 2 == 0)
                for i in range(8)
            ]
            time.sleep(0.7)  # all eight are waiting on the slow upstream
            proc.send_signal(signal.SIGTERM)
            answers = [future.result() for future in slow]
        assert [a.status_code for a in answers] == [200] * 8
        for i, answer in enumerate(answers):  # whole, not cut off by the shutdown
            if i % 2 == 0:
                assert answer.text.rstrip().endswith("data: [DONE]"), answer.text
            else:
                assert answer.json()["choices"][0]["message"]["content"].startswith("mock: slow")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

    async def written() -> list[str]:
        from sluicegate.stores.sqlite import SqliteStore

        store = SqliteStore(str(db))
        await store.open()
        rows = await store._run(
            lambda conn: conn.execute("SELECT request_id, status FROM sluicegate_audit").fetchall()
        )
        await store.close()
        assert {status for _, status in rows} == {200}
        return [request_id for request_id, _ in rows]

    finished = quick + [a.headers["x-request-id"] for a in answers]
    assert sorted(asyncio.run(written())) == sorted(finished)
    assert not (tmp_path / "spill.jsonl").exists() or not (tmp_path / "spill.jsonl").stat().st_size
