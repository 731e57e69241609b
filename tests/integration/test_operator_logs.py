"""What an operator reads on a running ``sluicegate serve``'s standard error: every line
has its time and level; a start-up failure is one line naming what failed; SIGHUP
reloads; the stop says that it drains and when it is done; a request's failed attempts,
retries, fallbacks and the circuit breaker are told, with the provider's own words and
never its credentials; a 404 names the model asked for."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.fakes.failing_provider import FailingProvider
from tests.fakes.gateway import free_port, serve_process
from tests.integration.test_cli import wait_ready

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")
SECRET = "sk-upstream-secret-4f1c9e7a2b"


def _config(port: int, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"listen": f"127.0.0.1:{port}", **gateway},
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "mock"}]}],
    }


def _chat(url: str, model: str = "m") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=20)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.splitlines()


def _finished(proc: subprocess.Popen[str]) -> tuple[int, list[str]]:
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.splitlines()


def _has_time_and_level(line: str) -> bool:
    if line.startswith("{"):
        entry = orjson.loads(line)
        return isinstance(entry.get("ts"), str) and entry.get("level") == "INFO"
    return LINE.match(line) is not None


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_every_line_has_its_time_and_level_and_the_stop_is_told(tmp_path: Path) -> None:
    port = free_port()
    proc = serve_process(tmp_path, _config(port), args=("--access-log",))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    assert _chat(url).status_code == 200
    missing = _chat(url, "no-such-model")
    assert missing.status_code == 404
    time.sleep(0.3)  # the access log line is written once the answer is sent
    code, lines = _stop(proc)
    assert code == 0
    assert lines and all(_has_time_and_level(line) for line in lines), lines
    access = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert [entry["status"] for entry in access] == [200, 404]
    rid = missing.headers["x-request-id"]
    assert any(f"request {rid}: 404 for model 'no-such-model'" in line for line in lines), lines
    serving = _index(lines, f"serving 1 rules on http://127.0.0.1:{port}")
    draining = _index(lines, "stopping: no new connections; draining")
    stopped = _index(lines, "stopped: drained")
    assert serving < draining < stopped == len(lines) - 1


def test_a_port_in_use_is_one_line_and_a_failed_exit(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, lines = _finished(serve_process(tmp_path, _config(port)))
    assert code == 1
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, lines
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in errors[0]
    assert not any("Traceback" in line or "serving" in line for line in lines), lines


def test_a_store_that_cannot_be_opened_is_named_without_its_password(tmp_path: Path) -> None:
    port = free_port()
    closed = free_port()
    store = f"postgresql://gateway:pw-9d8c7b6a5f@127.0.0.1:{closed}/test"
    code, lines = _finished(serve_process(tmp_path, _config(port, store=store)))
    assert code == 1
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, lines
    assert (
        f"cannot open the config store postgresql://gateway:***@127.0.0.1:{closed}/test"
        in (errors[0])
    )
    text = "\n".join(lines)
    assert "pw-9d8c7b6a5f" not in text and "Traceback" not in text and "serving" not in text


def test_redis_away_stops_a_closed_gateway_and_is_a_warning_for_an_open_one(
    tmp_path: Path,
) -> None:
    port = free_port()
    redis = f"redis://127.0.0.1:{free_port()}/0"
    closed = _config(port, redis=redis, redis_failure="closed")
    code, lines = _finished(serve_process(tmp_path, closed))
    assert code == 1
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1 and f"cannot reach Redis at {redis}" in errors[0], lines

    proc = serve_process(tmp_path, _config(port, redis=redis))
    wait_ready(f"http://127.0.0.1:{port}", proc)
    code, lines = _stop(proc)
    assert code == 0
    warned = _index(lines, f"WARNING cannot reach Redis at {redis}")
    assert warned < _index(lines, "serving 1 rules")


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_the_config(tmp_path: Path, workers: int) -> None:
    port = free_port()
    proc = serve_process(tmp_path, _config(port), args=("--workers", str(workers)))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        time.sleep(0.5 * workers)  # every worker has started
        path = tmp_path / "gateway.yaml"
        edited = yaml.safe_load(path.read_text())
        edited["rules"][0]["match"]["models"] = ["m", "added"]
        path.write_text(yaml.safe_dump(edited))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _chat(url, "added").status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert proc.poll() is None
    finally:
        code, lines = _stop(proc)
    assert code == 0
    reloads = [line for line in lines if f"SIGHUP: reloading {path}" in line]
    assert len(reloads) == workers, lines


@pytest.fixture
def failing() -> Iterator[FailingProvider]:
    server = FailingProvider("unused-azure-token", "unused-google-token").start()
    yield server
    server.stop()


def test_failed_attempts_retries_fallbacks_and_the_circuit_are_logged(
    tmp_path: Path, failing: FailingProvider
) -> None:
    port = free_port()
    config = _config(port)
    config["services"].append(
        {
            "name": "broken",
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": failing.port,
            "path": "/k/500",
            "retries": 1,
            "credentials": {"header_name": "Authorization", "header_value": f"Bearer {SECRET}"},
        }
    )
    config["rules"] = [
        {
            "name": "chat",
            "match": {"models": ["m"]},
            "targets": [{"service": "broken"}],
            "fallbacks": [{"service": "mock"}],
        }
    ]
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        answers = [_chat(url) for _ in range(3)]  # 2 attempts each: the 5th failure ejects
    finally:
        code, lines = _stop(proc)
    assert code == 0
    assert [a.status_code for a in answers] == [200] * 3
    assert f"Bearer {SECRET}" in failing.credentials  # sent, and quoted back in the error
    text = "\n".join(lines)
    assert SECRET not in text
    rid = answers[0].headers["x-request-id"]
    target = f"http://127.0.0.1:{failing.port}/k/500"
    first = _index(lines, f"request {rid}: attempt 1 on service 'broken' ({target}) failed")
    assert " WARNING " in lines[first]
    assert "status 500, the provider said: refused POST /k/500/chat/completions" in lines[first]
    assert "with credential [redacted]" in lines[first]
    retry = _index(lines, f"request {rid}: retry 1 of 1 on service 'broken' in ")
    second = _index(lines, f"request {rid}: attempt 2 on service 'broken'")
    fallen = f"request {rid}: rule 'chat' falls back from service 'broken' to 'mock'"
    fallback = _index(lines, fallen)
    assert first < retry < second < fallback
    ejected = _index(lines, f"circuit open: service 'broken' target {target} ejected for 10s")
    assert "after 5 failures in a row" in lines[ejected]
    rid3 = answers[2].headers["x-request-id"]
    assert f"request {rid3}: service 'broken' passed over: all 1 targets" in text


def test_a_stream_cut_short_is_logged(tmp_path: Path, failing: FailingProvider) -> None:
    port = free_port()
    config = _config(port)
    config["services"] = [
        {
            "name": "cut",
            "provider": "openai",
            "protocol": "http",
            "host": "127.0.0.1",
            "port": failing.port,
            "path": "/k/stream-break",
            "credentials": {"header_name": "Authorization", "header_value": f"Bearer {SECRET}"},
        }
    ]
    config["rules"][0]["targets"] = [{"service": "cut"}]
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(url + "/v1/chat/completions", json=body, timeout=20)
    finally:
        code, lines = _stop(proc)
    assert code == 0 and answer.status_code == 200
    assert '"error"' in answer.text  # the client's stream ends with an error event
    rid = answer.headers["x-request-id"]
    cut = _index(lines, f"request {rid}: the stream from service 'cut' ended early: ")
    assert " WARNING " in lines[cut]
    assert SECRET not in "\n".join(lines)


def test_sighup_with_a_broken_edit_keeps_the_running_config(tmp_path: Path) -> None:
    port = free_port()
    proc = serve_process(tmp_path, _config(port))
    url = f"http://127.0.0.1:{port}"
    path = tmp_path / "gateway.yaml"
    try:
        wait_ready(url, proc)
        path.write_text("services: [{name: mock, provider: nope}]\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None
        assert _chat(url).status_code == 200  # the running config stays
    finally:
        code, lines = _stop(proc)
    assert code == 0
    assert any(f"SIGHUP: reloading {path}" in line for line in lines), lines
    # Said by the reload (or by the file watch, had it seen the edit first).
    refused = f"ERROR {path}: edit refused, the running config stays: "
    assert any(refused in line for line in lines), lines
