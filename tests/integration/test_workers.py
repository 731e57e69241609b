"""``sluicegate serve --workers 2`` without Redis or a key secret: the workers share one
set of limit counters, so a limit holds for the gateway, not for each worker, and one
signing secret, so an id one worker gave is known to the others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.fakes.batch_server import OPENAI_KEY, FakeBatches
from tests.fakes.gateway import free_port, serve_process
from tests.fakes.mcp_servers import McpProcess
from tests.integration.test_cli import wait_ready

MCP_KEY = "sk-mcp-workers-1"


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
    # "serving" is said once both workers have started (each says its config's warning).
    lines = err.splitlines()
    started = [i for i, line in enumerate(lines) if "authentication off: auth: none" in line]
    serving = next(i for i, line in enumerate(lines) if "serving 1 rules" in line)
    assert len(started) == 3 and serving > started[-1], err  # the main process's, each worker's
    assert "(2 workers)" in lines[serving]


def test_two_workers_without_a_key_secret_know_each_others_file_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No configured secret: the ids are signed with one made for this run, which every
    # worker of the run shares (one made per worker would refuse the other's ids).
    monkeypatch.delenv("SLUICEGATE_KEY_SECRET", raising=False)
    monkeypatch.delenv("SLUICEGATE_MASTER_KEY", raising=False)
    fake = FakeBatches().start()
    port = free_port()
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}"},
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
            {"name": "files", "match": {"paths": ["/v1/files"]}, "targets": [{"service": "oa"}]}
        ],
    }
    proc = serve_process(tmp_path, config, args=("--workers", "2"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        made = OpenAI(base_url=url + "/v1", api_key="unused").files.create(
            file=("in.jsonl", b'{"custom_id": "1"}\n'), purpose="batch"
        )

        def fetch(_: int) -> int:
            with httpx.Client(timeout=20) as client:  # a connection of its own
                return client.get(f"{url}/v1/files/{made.id}").status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(fetch, range(64)))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        fake.stop()
    assert statuses == [200] * 64, err


def test_two_workers_without_redis_serve_one_mcp_session(tmp_path: Path) -> None:
    counter = McpProcess("counter", free_port()).start()
    port = free_port()
    config = {
        "gateway": {"listen": f"127.0.0.1:{port}"},
        "mcp_servers": [{"name": "counter", "url": counter.url}],
        "consumers": [{"name": "team", "keys": [MCP_KEY]}],
    }
    proc = serve_process(tmp_path, config, keyless=False, args=("--workers", "2"))
    url = f"http://127.0.0.1:{port}/mcp"
    headers = {"accept": "application/json, text/event-stream", "x-api-key": MCP_KEY}

    def post(message: dict[str, object]) -> httpx.Response:
        with httpx.Client(timeout=20) as client:  # a connection of its own, as after a balancer
            return client.post(url, json=message, headers=headers)

    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {}},
        }
        opened = post(init)
        assert opened.status_code == 200, opened.text
        headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        pings = [{"jsonrpc": "2.0", "id": 2 + i, "method": "ping"} for i in range(24)]
        with ThreadPoolExecutor(8) as pool:
            statuses = [answer.status_code for answer in pool.map(post, pings)]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        counter.kill()
    assert statuses == [200] * 24, err
