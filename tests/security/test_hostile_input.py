"""Hostile input on every route: each is a clear 4xx or a closed connection, never a 5xx, a
hang or a crash, and the worker keeps answering. Raw sockets where a client library would
tidy the request up first."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.gateway import RunningGateway

KEY = "sk-hostile-input-0001"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
]


def serving(settings: dict[str, Any]) -> Iterator[RunningGateway]:
    config = {
        "gateway": settings,
        "services": [{"name": "mock", "provider": "mock"}],
        "rules": [{"name": "r", "targets": [{"service": "mock"}]}],
        "consumers": [{"name": "team", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningGateway]:
    yield from serving({"max_body_bytes": 1024 * 1024, "body_timeout": "1s"})


@pytest.fixture(scope="module")
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as client:
        yield client


def healthy(gateway: RunningGateway) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "still here"}]}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=5)
    assert answer.json()["choices"][0]["message"]["content"] == "mock: still here"


def raw(gateway: RunningGateway, data: bytes, wait: float = 5) -> bytes:
    """Send ``data``; everything the server sends back until it closes (or ``wait`` passes)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and b"content-length: 0\r\n" not in received:
                head, _, rest = received.partition(b"\r\n\r\n")
                length = [ln for ln in head.split(b"\r\n") if ln.startswith(b"content-length:")]
                if length and len(rest) >= int(length[0].split(b":")[1]):
                    break
        return received


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:100]
    return int(response[9:12])


def request(path: str, headers: list[str], body: bytes = b"") -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: gateway", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("path", ROUTES)
def test_malformed_bodies_are_400(gateway: RunningGateway, path: str) -> None:
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,  # 100,000 levels deep
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"model": "m", "max_tokens": 1' + b"0" * 400 + b"}",  # a 400-digit integer
        b'{"model": "m", "temperature": 1e999}',
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe\xc3"}]}',
        b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "m"',
        b"\x00" * 100,
        b'{"model": NaN}',
        b"{}" * 1000,
    ]
    for body in bodies:
        answer = httpx.post(gateway.url + path, content=body, headers=AUTH, timeout=10)
        assert answer.status_code == 400, (body[:60], answer.text)
        assert "error" in answer.json()
    healthy(gateway)


# Any JSON value in any field of a request: the answer is a 200 or a 4xx, never a 5xx.
anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
FIELDS = [
    "model",
    "messages",
    "prompt",
    "input",
    "max_tokens",
    "stream",
    "stream_options",
    "temperature",
    "tools",
    "tool_choice",
    "response_format",
    "n",
    "stop",
    "system",
    "metadata",
    "encoding_format",
    "dimensions",
    "logit_bias",
    "user",
]
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | anything},
    optional={"content": anything, "tool_calls": anything, "name": anything},
)
request_body = st.fixed_dictionaries(
    {"model": st.just("m") | anything},
    optional={
        "messages": st.lists(message, max_size=3) | anything,
        **{field: anything for field in FIELDS[2:]},
    },
)


@pytest.mark.parametrize("path", ROUTES)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=request_body)
def test_wrong_types_anywhere_are_never_a_5xx(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    answer = http.post(path, json=body)
    assert answer.status_code < 500, (body, answer.text)
    if answer.status_code >= 400:
        assert "error" in answer.json()


@pytest.mark.parametrize("messages", [None, "text", [None], [{"content": 3}]])
def test_a_completion_with_a_stray_messages_field_is_answered(
    http: httpx.Client, messages: Any
) -> None:
    answer = http.post("/v1/completions", json={"model": "m", "prompt": "hi", "messages": messages})
    assert answer.status_code == 200, answer.text


def test_duplicate_and_conflicting_headers(gateway: RunningGateway) -> None:
    path = "/v1/chat/completions"
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    length = f"Content-Length: {len(body)}"
    # Two lengths, or a length and chunked: a smuggling attempt, refused by the HTTP parser.
    two_lengths = request(path, [f"Authorization: Bearer {KEY}", length, "Content-Length: 3"], body)
    assert status_of(raw(gateway, two_lengths)) == 400
    smuggled = request(
        path, [f"Authorization: Bearer {KEY}", "Transfer-Encoding: chunked", length], body
    )
    assert status_of(raw(gateway, smuggled)) == 400
    # Two keys: the last one counts, so a valid key first never carries a wrong one in.
    wrong_last = request(path, [f"Authorization: Bearer {KEY}", "Authorization: Bearer no", length])
    assert status_of(raw(gateway, wrong_last + body)) == 401
    right_last = request(path, ["Authorization: Bearer no", f"Authorization: Bearer {KEY}", length])
    assert status_of(raw(gateway, right_last + body)) == 200
    # A request id of 50 kB is not echoed; a 200 kB header is over gateway.max_header_bytes
    # (tests/security/test_request_head.py), a 431, not a crash.
    huge_id = request(
        path, [f"Authorization: Bearer {KEY}", "X-Request-Id: " + "r" * 50_000, length]
    )
    answer = raw(gateway, huge_id + body)
    assert status_of(answer) == 200 and b"r" * 300 not in answer
    huge = request(path, [f"Authorization: Bearer {KEY}", "X-Junk: " + "j" * 200_000, length])
    assert status_of(raw(gateway, huge + body)) == 431
    healthy(gateway)


@pytest.mark.parametrize("path", ROUTES)
def test_bodies_over_the_limit_with_and_without_a_length(
    gateway: RunningGateway, path: str
) -> None:
    declared = request(path, [f"Authorization: Bearer {KEY}", "Content-Length: 52428800"])
    assert status_of(raw(gateway, declared)) == 413  # answered from the header alone

    def chunks() -> Iterator[bytes]:
        for _ in range(300):
            yield b"x" * 8192

    chunked = httpx.post(gateway.url + path, content=chunks(), headers=AUTH, timeout=10)
    assert chunked.status_code == 413
    healthy(gateway)


def test_a_body_that_never_ends_is_408_at_the_body_timeout(gateway: RunningGateway) -> None:
    path = "/v1/chat/completions"
    started = time.monotonic()
    endless = request(
        path, [f"Authorization: Bearer {KEY}", "Transfer-Encoding: chunked"], b'5\r\n{"mod\r\n'
    )
    assert status_of(raw(gateway, endless)) == 408
    short = request(path, [f"Authorization: Bearer {KEY}", "Content-Length: 1000"], b'{"mo')
    answer = raw(gateway, short)
    assert status_of(answer) == 408 and b"request_timeout" in answer
    assert time.monotonic() - started < 4  # body_timeout is 1 s
    healthy(gateway)


def test_slow_clients_do_not_starve_the_worker(gateway: RunningGateway) -> None:
    """Slowloris: 200 connections trickle their headers a byte at a time. The worker keeps
    answering everyone else at once; each slow connection costs only its socket."""
    slow = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n")
            slow.append(sock)
        for round_ in range(5):
            for sock in slow:
                sock.sendall(f"X-Slow-{round_}: 1\r\n".encode())
            started = time.monotonic()
            healthy(gateway)
            assert time.monotonic() - started < 1.0
            time.sleep(0.1)
    finally:
        for sock in slow:
            sock.close()
    healthy(gateway)


@pytest.fixture(scope="module")
def strict_gateway() -> Iterator[RunningGateway]:
    """A gateway whose clients have 1 s for a request's line and headers."""
    yield from serving({"header_timeout": "1s"})


def closed_after(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(seconds)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed(strict_gateway: RunningGateway) -> None:
    """Closed silently, as an idle kept-alive connection is: a client that opened it ahead
    of time must not read a 408 as the answer to a request it is about to send."""
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        answer, took = closed_after(sock, 5)
    assert answer == b""
    assert 0.9 < took < 3


def test_a_request_line_that_stops_gets_408(strict_gateway: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HT")
        answer, took = closed_after(sock, 5)
    assert status_of(answer) == 408
    assert b'"code":"request_timeout"' in answer and b"header_timeout" in answer
    assert 0.9 < took < 3


def test_a_pipelined_head_trickled_behind_a_request_is_cut_off(
    strict_gateway: RunningGateway,
) -> None:
    """A whole request and the first byte of the next in one packet, then a byte now and
    then: the second head has its deadline too."""
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\nG")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # closed by the server: what is wanted
            for byte in b"ET /healthz HTTP/1.1\r\n":
                time.sleep(0.3)
                sock.sendall(bytes([byte]))
                if time.monotonic() - started > 4:
                    break
        answer, _ = closed_after(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200 ")  # the first request was answered
    assert b"HTTP/1.1 408 " in answer
    assert time.monotonic() - started < 5


def test_headers_trickled_slower_than_header_timeout_get_408(
    strict_gateway: RunningGateway,
) -> None:
    """Slowloris against the deadline: each byte is in time for no idle timer, the whole
    head is not. Other clients are served meanwhile."""
    socks = [socket.create_connection(("127.0.0.1", strict_gateway.port)) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n")
        started = time.monotonic()
        for round_ in range(20):  # 2 s of trickling, a header every 0.1 s
            for sock in socks:
                with contextlib.suppress(OSError):  # closed by the server: what is wanted
                    sock.sendall(f"X-Slow-{round_}: 1\r\n".encode())
            time.sleep(0.1)
        healthy(strict_gateway)
        for sock in socks:
            answer, _ = closed_after(sock, 5)
            assert status_of(answer) == 408
        assert time.monotonic() - started < 6
    finally:
        for sock in socks:
            sock.close()


def test_the_deadline_covers_each_request_on_a_kept_alive_connection(
    strict_gateway: RunningGateway,
) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    whole = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        sock.settimeout(5)
        # Two requests, each within the deadline, the second after a pause longer than it:
        # the clock starts again at each request's first byte.
        for _ in range(2):
            sock.sendall(whole)
            first = sock.recv(65536)
            assert status_of(first) == 200
            time.sleep(1.3)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")  # and then nothing more
        answer, took = closed_after(sock, 5)
    assert status_of(answer) == 408
    assert 0.9 < took < 3


def test_a_slow_answer_is_not_cut_by_the_header_deadline(strict_gateway: RunningGateway) -> None:
    """The deadline ends with the head: a body sent slowly (within body_timeout) is fine."""
    body = b'{"model": "m", "messages": [{"role": "user", "content": "slow body"}]}'
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", strict_gateway.port)) as sock:
        sock.settimeout(5)
        sock.sendall(head)
        for piece in (body[:20], body[20:40], body[40:]):
            time.sleep(0.6)  # 1.8 s in all, beyond the 1 s head deadline
            sock.sendall(piece)
        answer = sock.recv(65536)
    assert status_of(answer) == 200
    assert b"mock: slow body" in answer
