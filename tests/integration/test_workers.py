"""``sluicegate serve --workers 2`` without Redis: the workers share one set of limit
counters, so a limit holds for the gateway, not for each worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.fakes.gateway import free_port, serve_process
from tests.integration.test_cli import wait_ready


def _ask(url: str) -> int:
    # A connection of its own for each request, so that both workers take some.
    with httpx.Client(timeout=20) as client:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        return client.post(url + "/v1/chat/completions", json=body).status_code


def test_two_workers_share_a_request_limit(tmp_path: Path) -> None:
    port = free_port()
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}"},
        "services": [{"name": "mock", "provider": "mock", "mock_latency": "200ms"}],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["m"]},
                "targets": [{"service": "mock"}],
                "policies": {"rate_limit": {"requests": 4, "window": "1m", "per": "global"}},
            }
        ],
    }
    proc = serve_process(tmp_path, config, args=("--workers", "2"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(_ask, [url] * 24))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert sorted(statuses) == [200] * 4 + [429] * 20, err
    assert "(2 workers)" in err
