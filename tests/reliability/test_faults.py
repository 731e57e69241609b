"""Faults around the gateway: an upstream that hangs, a spill file on a full disk, a config
reloaded under load. Each says what the client sees and what the audit log holds."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.fakes.faulty_server import FaultyUpstream
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import postgres_schema
from tests.fakes.tcp_proxy import TcpProxy
from tests.reliability.conftest import (
    ADMIN_KEY,
    AUTH,
    CLIENT_KEY,
    audit_row,
    audited,
    seen,
    upstream_service,
)
from tests.security.leaks import Leaks

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def faulty() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream("up").start()
    yield server
    server.stop()


def _tasks(gateway: RunningGateway) -> int:
    """Tasks alive on the gateway's event loop (the server's own included)."""
    http = gateway.runtime._http
    assert http is not None
    loop = http._session._loop

    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), loop).result(5)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_hanging_upstream_is_a_504_at_the_timeout_and_leaves_nothing_behind(
    start_gateway: Any, faulty: FaultyUpstream, leaks: Leaks, tmp_path: Path
) -> None:
    config = {
        # Every request waits out the timeout: passive checks would eject the target after
        # three, and answer the rest with a 503 at once (test_attempts.py).
        "services": [upstream_service("hangs", faulty.port, timeout="300ms", healthchecks={})],
        "rules": [{"name": "r", "targets": [{"service": "hangs"}], "fallback_on": []}],
        "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
    }
    gateway = start_gateway(audited(tmp_path, config))
    url = gateway.url + "/v1/chat/completions"
    assert httpx.post(url, json=BODY, headers=AUTH).status_code == 200
    tasks, fds = _tasks(gateway), _fds()
    faulty.mode = "hang"

    def one(stream: bool) -> tuple[int, float, str]:
        started = time.monotonic()
        with httpx.Client(timeout=10) as client:
            answer = seen(leaks, client.post(url, json={**BODY, "stream": stream}, headers=AUTH))
        return answer.status_code, time.monotonic() - started, answer.headers["x-request-id"]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, [i % 2 == 0 for i in range(60)]))
    assert {status for status, _, _ in results} == {504}
    assert all(0.3 <= took < 2.0 for _, took, _ in results), results  # at the timeout
    assert audit_row(gateway.url, results[-1][2])["status"] == 504
    faulty.mode = "ok"
    deadline = time.monotonic() + 5
    while _tasks(gateway) > tasks or _fds() > fds + 2:
        assert time.monotonic() < deadline, (
            f"tasks {_tasks(gateway)} (was {tasks}), descriptors {_fds()} (was {fds})"
        )
        time.sleep(0.1)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a disk that is full)")
def test_a_full_disk_under_the_spill_file_drops_rows_visibly_and_requests_keep_flowing(
    leaks: Leaks,
) -> None:
    with postgres_schema() as direct:
        parts = urlsplit(direct)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).up()
        through = direct.replace(parts.netloc, f"{parts.username}@127.0.0.1:{proxy.port}", 1)
        config = {
            "gateway": {"admin_key": ADMIN_KEY, "store": through},
            # Every write to /dev/full fails with ENOSPC, as on a full disk.
            "audit": {"spill_path": "/dev/full", "flush_interval": 0.05},
            "services": [{"name": "mock", "provider": "mock"}],
            "rules": [{"name": "r", "targets": [{"service": "mock"}]}],
            "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
        }
        gateway = RunningGateway(config).start()
        url = gateway.url + "/v1/chat/completions"
        dropped = gateway.runtime.metrics.audit_dropped.labels("default")
        try:
            before = httpx.post(url, json=BODY, headers=AUTH).headers["x-request-id"]
            assert audit_row(gateway.url, before)["status"] == 200
            proxy.down()  # the store is gone: rows go to the spill file, which cannot take them
            statuses = [
                httpx.post(url, json={**BODY, "stream": i % 2 == 0}, headers=AUTH).status_code
                for i in range(40)
            ]
            assert statuses == [200] * 40
            deadline = time.monotonic() + 5
            while dropped._value.get() < 40:
                assert time.monotonic() < deadline, f"{dropped._value.get()} rows said dropped"
                time.sleep(0.05)
            metrics = seen(leaks, httpx.get(gateway.url + "/metrics")).text
            assert 'sluicegate_audit_dropped_rows_total{gateway="default"}' in metrics
            proxy.up()  # the store is back: new rows are written again
            after = httpx.post(url, json=BODY, headers=AUTH).headers["x-request-id"]
            assert audit_row(gateway.url, after, seconds=15)["status"] == 200
        finally:
            gateway.stop()
            proxy.stop()


def _write_config(path: Path, model: str) -> None:
    config = {
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "r", "targets": [{"service": "mock", "model": model}]}],
        "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config))
    tmp.replace(path)  # an editor's atomic save


def test_config_reloads_under_load_lose_no_request(tmp_path: Path, leaks: Leaks) -> None:
    path = tmp_path / "gateway.yaml"
    _write_config(path, "version-0")
    gateway = RunningGateway(path=path, poll_interval=0.05).start()
    stop = threading.Event()
    url = gateway.url + "/v1/chat/completions"

    def load(n: int) -> list[tuple[int, str]]:
        seen_models: list[tuple[int, str]] = []
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                answer = client.post(url, json={**BODY, "stream": n % 2 == 0}, headers=AUTH)
                model = answer.json()["model"] if n % 2 else answer.text.split('"model":"')[1][:9]
                seen_models.append((answer.status_code, model))
        return seen_models

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            running = [pool.submit(load, n) for n in range(6)]
            for version in range(1, 11):
                time.sleep(0.2)
                _write_config(path, f"version-{version}")
            time.sleep(0.5)
            stop.set()
            answers = [a for future in running for a in future.result()]
        assert len(answers) > 200
        assert {status for status, _ in answers} == {200}
        assert len({model for _, model in answers}) >= 5  # the reloads took effect meanwhile
        last = httpx.post(url, json=BODY, headers=AUTH)
        assert seen(leaks, last).json()["model"] == "version-10"
    finally:
        gateway.stop()
