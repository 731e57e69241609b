"""The request head is capped: its bytes (request line and headers) at
``gateway.max_header_bytes`` and its fields at ``gateway.max_headers``. Past either, the
client gets a 431 in the gateway's error shape and the connection closes, and what it
would have sent beyond is never held. Raw sockets, as an attacker sends it."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest

from tests.fakes.gateway import RunningGateway, free_port, serve_process
from tests.integration.test_cli import wait_ready

KEY = "sk-request-head-0001"
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


def config(gateway: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": gateway,
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "r", "targets": [{"service": "mock"}]}],
        "consumers": [{"name": "team", "keys": [KEY]}],
    }


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    """The defaults: 64 KiB and 100 fields."""
    running = RunningGateway(config({})).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def small() -> Iterator[RunningGateway]:
    running = RunningGateway(config({"max_header_bytes": 4096, "max_headers": 10})).start()
    yield running
    running.stop()


def head(headers: list[bytes], target: bytes = b"/v1/chat/completions") -> bytes:
    """A chat request's head: its four fields (Host among them), then ``headers``."""
    lines = [
        b"POST " + target + b" HTTP/1.1",
        b"Host: gateway",
        b"Authorization: Bearer " + KEY.encode(),
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(BODY)).encode(),
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def send_until_answered(port: int, data: bytes, piece: int = 16384, pause: float = 0) -> bytes:
    """Send ``data`` in pieces, as a client that also reads would: stop once the server
    answers or closes. The answer; one that is not a 200 must come with the connection's
    end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server closed its end: what is wanted
            for start in range(0, len(data), piece):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(data[start : start + piece])
                if pause:
                    time.sleep(pause)
        stream = sock.makefile("rb")
        answer = read_answer(stream)
        if not answer.startswith(b"HTTP/1.1 200 "):
            with contextlib.suppress(ConnectionResetError):
                assert stream.read() == b"", "the connection was left open"
        return answer


def read_answer(stream: BinaryIO) -> bytes:
    """One whole answer (it has a Content-Length), or what came before the server closed."""
    top = b""
    while (line := stream.readline()) not in (b"\r\n", b""):
        top += line
    lengths = [ln for ln in top.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    return top + b"\r\n" + (stream.read(int(lengths[0].split(b":")[1])) if lengths else b"")


def assert_431(answer: bytes) -> None:
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head_part.lower()
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_header_fields_too_large"


def answered(answer: bytes) -> bytes:
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    return answer


def test_a_head_within_the_limits_is_served(gateway: RunningGateway) -> None:
    """96 more fields (100 in all) and a head of 64 KiB."""
    many = [f"X-Field-{i}: {i}".encode() for i in range(96)]
    answered(send_until_answered(gateway.port, head(many) + BODY))
    base = len(head([b"X-Big: "]))
    big = [b"X-Big: " + b"b" * (64 * 1024 - base)]
    assert len(head(big)) == 64 * 1024
    answered(send_until_answered(gateway.port, head(big) + BODY))


def test_a_huge_header_gets_431(gateway: RunningGateway) -> None:
    assert_431(send_until_answered(gateway.port, head([b"X-Big: " + b"b" * 1_000_000]) + BODY))
    base = len(head([b"X-Big: "]))  # one byte over
    assert_431(
        send_until_answered(gateway.port, head([b"X-Big: " + b"b" * (64 * 1024 - base + 1)]))
    )


def test_too_many_headers_get_431(gateway: RunningGateway) -> None:
    many = [f"X-Field-{i}: {i}".encode() for i in range(97)]  # 101 in all, each small
    assert_431(send_until_answered(gateway.port, head(many) + BODY))
    endless = [b"X: 1"] * 1_000_000  # 6 MB of tiny fields
    assert_431(send_until_answered(gateway.port, head(endless) + BODY))


def test_a_long_request_line_gets_431(gateway: RunningGateway) -> None:
    target = b"/v1/chat/completions?q=" + b"q" * 200_000
    assert_431(send_until_answered(gateway.port, head([], target) + BODY))


def test_a_header_trickled_past_the_limit_gets_431(gateway: RunningGateway) -> None:
    """Small pieces, each far below the limit, a header that never ends: cut at 64 KiB,
    not after the whole megabyte."""
    data = head([])[:-2] + b"X-Trickle: " + b"t" * 1_000_000
    started = time.monotonic()
    assert_431(send_until_answered(gateway.port, data, piece=1024, pause=0.001))
    assert time.monotonic() - started < 1  # the whole megabyte takes 1000 pauses of 1 ms


def test_the_limits_are_the_configured_ones(small: RunningGateway) -> None:
    answered(send_until_answered(small.port, head([b"X-A: 1"] * 6) + BODY))  # 10 fields
    assert_431(send_until_answered(small.port, head([b"X-A: 1"] * 7) + BODY))
    base = len(head([b"X-Big: "]))
    answered(send_until_answered(small.port, head([b"X-Big: " + b"b" * (4096 - base)]) + BODY))
    assert_431(send_until_answered(small.port, head([b"X-Big: " + b"b" * (4097 - base)]) + BODY))


def test_requests_on_a_kept_alive_connection_are_counted_each(small: RunningGateway) -> None:
    """Each head has the whole limit: three near it in a row on one connection, one of them
    pipelined behind another in the same packet, are all served; then one over it gets 431
    after the answers before it."""
    base = len(head([b"X-Big: "]))
    near = head([b"X-Big: " + b"b" * (4096 - base)]) + BODY
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        sock.sendall(near)
        assert b"mock: hi" in answered(read_answer(stream))
        sock.sendall(near + near)
        assert b"mock: hi" in answered(read_answer(stream))
        assert b"mock: hi" in answered(read_answer(stream))
        sock.sendall(near + head([b"X-Big: " + b"b" * 5000]))
        assert b"mock: hi" in answered(read_answer(stream))
        assert_431(read_answer(stream))
        assert stream.read() == b""


def rss_peak_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_huge_heads_on_parallel_connections_hold_no_memory(tmp_path: Path) -> None:
    """8 connections each send 50 MB of header bytes as fast as they can: the gateway's peak
    memory grows by less than a few MB, and it answers everyone else meanwhile."""
    port = free_port()
    proc = serve_process(tmp_path, config({"listen": f"127.0.0.1:{port}"}))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        for _ in range(20):  # warm: every lazy import and buffer of a served request is made
            answered(send_until_answered(port, head([]) + BODY))
        before = rss_peak_kb(proc.pid)
        sent = [0] * 8
        answers: list[bytes] = [b""] * 8

        def attack(slot: int) -> None:
            chunk = b"X-Flood: " + b"f" * (1024 * 1024 - 11) + b"\r\n"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(head([])[:-2])
                    for _ in range(50):
                        sock.sendall(chunk)
                        sent[slot] += len(chunk)
                with contextlib.suppress(OSError):
                    while data := sock.recv(65536):
                        answers[slot] += data

        threads = [threading.Thread(target=attack, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        answered(send_until_answered(port, head([]) + BODY))
        for thread in threads:
            thread.join(60)
        grown = rss_peak_kb(proc.pid) - before
        answered(send_until_answered(port, head([]) + BODY))
    finally:
        proc.kill()
        proc.wait(5)
        proc.communicate()
    # Cut off long before 50 MB: what was sent sits in the two ends' socket buffers.
    assert all(n < 16 * 1024 * 1024 for n in sent), sent
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers), answers
    assert grown < 4 * 1024, f"the peak RSS grew by {grown} KiB"
