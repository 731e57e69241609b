"""The control plane (``/admin``, ``/ui``) reads bodies under the data plane's limits: a body
over ``gateway.max_body_bytes`` is refused without being read, one that stalls for
``gateway.body_timeout`` is a 408, both in the Admin API's JSON error shape."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.gateway import RunningGateway, free_port, serve_process
from tests.integration.test_cli import wait_ready

ADMIN_KEY = "adm-bodies-key-000001"
LIMIT = 1024 * 1024
TWENTY_MB = 20 * 1024 * 1024
# (method, path, headers): a login, an Admin API create and an Admin API replace.
WRITES = [
    ("POST", "/ui/api/login", []),
    ("POST", "/admin/services", [f"Authorization: Bearer {ADMIN_KEY}"]),
    ("PUT", "/admin/services/demo", [f"Authorization: Bearer {ADMIN_KEY}"]),
]


def _config(folder: Path) -> dict[str, object]:
    return {
        "gateway": {
            "admin_key": ADMIN_KEY,
            "store": f"sqlite:///{folder / 'store.db'}",
            "max_body_bytes": LIMIT,
            "body_timeout": "1s",
        },
        "audit": {"spill_path": str(folder / "spill.jsonl")},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "targets": [{"service": "demo"}]}],
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    running = RunningGateway(_config(tmp_path_factory.mktemp("bodies"))).start()
    yield running
    running.stop()


def _head(method: str, path: str, headers: list[str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


def _answer(sock: socket.socket, wait: float) -> tuple[int, dict[str, object], float]:
    """The status and JSON body the server sends, and how long it took to come."""
    started = time.monotonic()
    sock.settimeout(wait)
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), received[:200]
    return int(head[9:12]), json.loads(body), time.monotonic() - started


@pytest.mark.parametrize(("method", "path", "headers"), WRITES)
def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(
    gateway: RunningGateway, method: str, path: str, headers: list[str]
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(_head(method, path, [*headers, f"Content-Length: {TWENTY_MB}"]))
        status, body, _ = _answer(sock, 5)  # answered from the header: no body was sent
    assert status == 413
    assert body["error"]["code"] == "request_too_large"  # type: ignore[index]
    assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "headers"), WRITES)
def test_a_chunked_body_over_the_limit_is_413_while_it_is_still_coming(
    gateway: RunningGateway, method: str, path: str, headers: list[str]
) -> None:
    chunk = b"x" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(_head(method, path, [*headers, "Transfer-Encoding: chunked"]))
        # Twice the limit, and then the client waits: the body never ends.
        for _ in range(2 * LIMIT // len(chunk)):
            try:
                sock.sendall(framed)
            except OSError:  # the server answered and closed: what is wanted
                break
        status, body, _ = _answer(sock, 5)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "headers"), WRITES)
def test_a_body_that_stalls_is_408_at_the_body_timeout(
    gateway: RunningGateway, method: str, path: str, headers: list[str]
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(_head(method, path, [*headers, "Content-Length: 1000"]) + b'{"key": "ad')
        status, body, took = _answer(sock, 10)
    assert status == 408
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert took < 3  # body_timeout is 1 s


def test_the_control_plane_still_works_under_the_limits(gateway: RunningGateway) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = httpx.post(
        gateway.url + "/admin/services",
        json={"name": "fine", "provider": "mock", "description": "d" * (LIMIT // 2)},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    login = httpx.post(gateway.url + "/ui/api/login", json={"key": ADMIN_KEY})
    assert login.status_code == 200
    assert httpx.delete(gateway.url + "/admin/services/fine", headers=admin).status_code == 204


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_twenty_megabyte_login_is_never_held_in_memory(tmp_path: Path) -> None:
    """In a process of its own, whose peak memory shows what a request made it hold."""
    port = free_port()
    config = _config(tmp_path)
    config["gateway"]["listen"] = f"127.0.0.1:{port}"  # type: ignore[index]
    proc = serve_process(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        httpx.post(url + "/ui/api/login", json={"key": "warm-up-wrong-key-000"})
        before = _peak_rss(proc.pid)
        chunk = b"x" * 65536
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(_head("POST", "/ui/api/login", ["Transfer-Encoding: chunked"]))
            try:
                for _ in range(TWENTY_MB // len(chunk)):
                    sock.sendall(framed)
                sock.sendall(b"0\r\n\r\n")
            except OSError:  # the server answered and closed: what is wanted
                pass
            status, _, _ = _answer(sock, 10)
        grown = _peak_rss(proc.pid) - before
        assert grown < 8 * 1024 * 1024, f"the server held {grown} bytes more at its peak"
        assert status == 413
    finally:
        proc.terminate()
        proc.wait(15)
