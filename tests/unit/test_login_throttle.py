"""The failed-login table (admin/throttle.py): its locks, their growth, and its bounds."""

from __future__ import annotations

import pytest

import sluicegate.admin.throttle as throttle
from sluicegate.admin.throttle import LoginThrottle, client_of


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(throttle, "_clock", lambda: now[0])
    return now


def test_locks_double_up_to_the_longest_and_are_forgotten_after_an_hour(
    clock: list[float],
) -> None:
    table = LoginThrottle()
    for _ in range(9):
        table.failed("a")
    assert table.retry_after("a") is None
    table.failed("a")
    waits = [table.retry_after("a")]
    for _ in range(12):  # wait out each lock, then fail once more
        clock[0] += waits[-1] or 0
        assert table.retry_after("a") is None
        table.failed("a")
        waits.append(table.retry_after("a"))
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert waits[-1] == throttle.LONGEST_LOCK
    clock[0] += throttle.MEMORY + throttle.LONGEST_LOCK
    table.failed("a")  # an hour of quiet: a first failure again
    assert table.retry_after("a") is None


def test_a_success_clears_its_own_address_only(clock: list[float]) -> None:
    table = LoginThrottle()
    for _ in range(10):
        table.failed("a")
        table.failed("b")
    table.succeeded("b")
    assert table.retry_after("a") is not None and table.retry_after("b") is None


def test_the_table_is_bounded(clock: list[float]) -> None:
    table = LoginThrottle(max_addresses=100)
    for n in range(10_000):
        table.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(table) == 100


def test_addresses_as_counted() -> None:
    assert client_of(("127.0.0.2", 5000)) == "127.0.0.2"
    # One client commonly holds a whole IPv6 /64.
    assert client_of(("2001:db8::1", 1)) == client_of(("2001:db8::ffff:1", 2))
    assert client_of(("2001:db8::1", 1)) != client_of(("2001:db8:0:1::1", 1))
    assert client_of(("::ffff:10.0.0.1", 1)) == "10.0.0.1"
    assert client_of(None) == ""
