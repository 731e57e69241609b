"""``sluicegate logs tail`` and ``sluicegate usage`` as a user runs them, against a gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluicegate.cli_audit import format_row, moment, usage_table
from tests.conftest import KEY, OTHER_KEY
from tests.fakes.gateway import RunningGateway
from tests.integration.test_audit import ADMIN_KEY, all_logs, chat, gateway_config


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    running = RunningGateway(gateway_config(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)).start()
    yield running
    running.stop()


def run(
    gateway: RunningGateway, *args: str, key: str | None = ADMIN_KEY
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SLUICEGATE_ADMIN_KEY"}
    if key is not None:
        env["SLUICEGATE_ADMIN_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", *args, "--url", gateway.url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def wait_rows(gateway: RunningGateway, count: int) -> None:
    admin = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    deadline = time.monotonic() + 5
    while len(all_logs(admin)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(all_logs(admin)) == count


def test_logs_tail_prints_recent_rows_oldest_first(gateway: RunningGateway) -> None:
    ids = [chat(gateway, KEY, "mock-chat", f"hi {i}") for i in range(3)]
    failed = chat(gateway, OTHER_KEY, "doomed", "no")
    wait_rows(gateway, 4)
    done = run(gateway, "logs", "tail")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[-1] if "error=" not in line else line.split()[-2] for line in lines] == [
        *ids,
        failed,
    ]
    assert "  200  team-a  chat>mock  mock-chat  " in lines[0] and " tok  $0.0" in lines[0]
    assert "  502  team-b  doomed>broken  doomed  " in lines[-1] and "error=" in lines[-1]

    only_b = run(gateway, "logs", "tail", "--consumer", "team-b", "-n", "5")
    assert [line.split("  ")[2] for line in only_b.stdout.splitlines()] == ["team-b"]


def _follow(gateway: RunningGateway, *more: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    command = ["logs", "tail", "-f", "--interval", "0.2", "--url", gateway.url, *more]
    return subprocess.Popen(
        [sys.executable, "-m", "sluicegate", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines_of(proc: subprocess.Popen[str]) -> list[str]:
    """The lines ``proc`` prints, as they come: a thread reads them (select() on a buffered
    pipe misses lines already buffered)."""
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.strip() for line in proc.stdout or ()), daemon=True
    )
    reader.start()
    return lines


def test_logs_tail_one_line_then_only_new_ones_in_order(gateway: RunningGateway) -> None:
    older = [chat(gateway, KEY, "mock-chat", f"older {i}") for i in range(3)]
    wait_rows(gateway, 3)
    proc = _follow(gateway, "-n", "1")
    try:
        lines = _lines_of(proc)
        deadline = time.monotonic() + 15
        while not lines:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
        time.sleep(1.0)  # several polls: the rows before the last one are not printed
        assert [line.split()[-1] for line in lines] == [older[-1]]
        later = [chat(gateway, KEY, "mock-chat", f"later {i}") for i in range(3)]
        while len(lines) < 4:
            assert time.monotonic() < deadline + 15, lines
            time.sleep(0.05)
        time.sleep(0.8)
        assert [line.split()[-1] for line in lines] == [older[-1], *later]
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_tail_follow_prints_new_rows(gateway: RunningGateway) -> None:
    first = chat(gateway, KEY, "mock-chat", "before")
    wait_rows(gateway, 1)
    env = {**os.environ, "SLUICEGATE_ADMIN_KEY": ADMIN_KEY}
    command = ["logs", "tail", "-f", "--interval", "0.2", "--url", gateway.url]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluicegate", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        # A thread reads the lines: select() on a buffered pipe misses lines already buffered.
        reader = threading.Thread(
            target=lambda: lines.extend(line.strip() for line in proc.stdout or ()),
            daemon=True,
        )
        reader.start()

        def read_until(wanted: set[str]) -> None:
            deadline = time.monotonic() + 15
            while not wanted <= {line.split()[-1] for line in list(lines)}:
                assert time.monotonic() < deadline, lines
                time.sleep(0.05)

        read_until({first})
        later = [chat(gateway, KEY, "mock-chat", f"after {i}") for i in range(3)]
        read_until(set(later))
        time.sleep(0.8)  # a few more polls: nothing is printed twice
        assert [line.split()[-1] for line in lines] == [first, *later]
    finally:
        proc.terminate()
        proc.wait(10)


def test_usage_prints_a_table(gateway: RunningGateway) -> None:
    for i in range(3):
        chat(gateway, KEY, "mock-chat", f"hello {i}")
    chat(gateway, OTHER_KEY, "mock-chat", "from b")
    wait_rows(gateway, 4)
    done = run(gateway, "usage", "--since", "1d")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "CONSUMER",
        "REQUESTS",
        "ERRORS",
        "INPUT",
        "OUTPUT",
        "CACHED",
        "COST_USD",
    ]
    cells = {line.split()[0]: line.split() for line in lines[1:]}
    assert cells["team-a"][1:3] == ["3", "0"] and cells["team-b"][1:3] == ["1", "0"]
    assert cells["total"][1] == "4"

    by_model = run(gateway, "usage", "--by", "model", "--consumer", "team-b")
    assert [line.split()[:2] for line in by_model.stdout.splitlines()[1:]] == [["mock-chat", "1"]]
    nothing = run(gateway, "usage", "--until", "1d")
    assert nothing.stdout.strip() == "no requests in that range"


def test_a_wrong_admin_key_is_reported(gateway: RunningGateway) -> None:
    done = run(gateway, "usage", key="adm-not-the-key-9")
    assert done.returncode == 1
    assert "401" in done.stderr and "admin key" in done.stderr
    assert "adm-not-the-key-9" not in done.stderr


def test_formatting() -> None:
    assert moment("2025-01-01T00:00:00Z") == "2025-01-01T00:00:00Z"
    assert moment("1700000000") == "1700000000"
    assert moment("1d", now=100_000.0) == "13600.000"
    assert moment("1h30m", now=10_000.0) == "4600.000"
    row = {
        "ts": "2026-03-01T10:00:00.123456+00:00",
        "status": 200,
        "consumer": None,
        "rule": "chat",
        "service": None,
        "model": "m",
        "latency_ms": 12.6,
        "input_tokens": 3,
        "output_tokens": None,
        "cost_usd": None,
        "request_id": "r1",
        "error_type": None,
        "cache": "hit",
    }
    assert (
        format_row(row)
        == "2026-03-01 10:00:00.123  200  -  chat  m  13ms  3/0 tok  -  r1  cache=hit"
    )
    table = usage_table(
        "day",
        [
            {
                "group": "2026-03-01",
                "requests": 1200,
                "errors": 1,
                "input_tokens": 5,
                "output_tokens": 6,
                "cached_tokens": 0,
                "cost_usd": 0.5,
            },
            {
                "group": None,
                "requests": 1,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cached_tokens": 0,
                "cost_usd": 0.0,
            },
        ],
    )
    assert table[1].split() == ["2026-03-01", "1,200", "1", "5", "6", "0", "0.5000"]
    assert table[2].split()[0] == "-" and table[3].split()[:2] == ["total", "1,201"]
