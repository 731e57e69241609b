from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-team-a-0001"
OTHER_KEY = "sk-test-team-b-0002"

T = TypeVar("T")


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def start_gateway() -> Iterator[Callable[[dict[str, Any]], RunningGateway]]:
    running: list[RunningGateway] = []

    def start(config: dict[str, Any]) -> RunningGateway:
        gateway = RunningGateway(config).start()
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()


def openai_service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        **extra,
    }


@pytest.fixture
def closed_port() -> int:
    return free_port()


def eventually(check: Callable[[], T], seconds: float = 10, step: float = 0.02) -> T:
    """``check()``'s value once it passes; its last ``AssertionError`` after ``seconds``.

    For what the gateway does after the client already has its answer (settling limits and
    budgets, metrics, the access log, the audit row, the span, storing a streamed answer in
    the cache): ``check`` holds the test's own assertions, unchanged.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(step)


def finished(url: str) -> int:
    """How many requests the gateway at ``url`` is done with (``sluicegate_requests_total``).

    The handler counts a request last: after it settled the request's limits and budgets
    and stored its answer in the cache, in the same step as the rest of its metrics, its
    access-log line, its audit row (queued) and the end of its span. A request it counts
    has left nothing behind for the next one to race with.
    """
    text = httpx.get(url + "/metrics", timeout=10).text
    return round(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "sluicegate_requests_total"
        )
    )


def wait_finished(url: str, count: int, seconds: float = 10) -> None:
    """Until the gateway at ``url`` is done with ``count`` requests (see ``finished``)."""

    def done() -> None:
        seen = finished(url)
        assert seen >= count, f"the gateway finished {seen} of {count} requests"

    eventually(done, seconds)


def settled(url: str, send: Callable[[], T]) -> T:
    """``send()``, one request to the gateway at ``url``, returned once the gateway is done
    with it, so that the next request sees what this one spent. Only for requests sent one
    at a time, each earlier one finished too: it waits for the count to go up by one."""
    before = finished(url)
    result = send()
    wait_finished(url, before + 1)
    return result


def logged_row(admin: httpx.Client, request_id: str, seconds: float = 0) -> dict[str, Any]:
    """The one audit row of a request, bodies included: found by its request id (a filter
    of ``/admin/logs``), then read by the row's own id; waits up to ``seconds`` for it to
    be written. ``admin`` carries the admin key."""

    def listed() -> list[dict[str, Any]]:
        found = admin.get("/admin/logs", params={"request_id": request_id})
        assert found.status_code == 200, found.text
        rows: list[dict[str, Any]] = found.json()["data"]
        assert len(rows) == 1, f"the audit rows of {request_id}: {rows}"
        return rows

    rows = eventually(listed, seconds)
    one = admin.get(f"/admin/logs/{rows[0]['id']}")
    assert one.status_code == 200, one.text
    row: dict[str, Any] = one.json()
    return row
