"""Streams are relayed event by event, as they arrive, not buffered."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import KEY, eventually, openai_service
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI


def test_first_event_reaches_the_client_before_the_upstream_finishes(
    fake_openai: FakeOpenAI, start_gateway: Callable[[dict[str, Any]], RunningGateway]
) -> None:
    gateway = start_gateway(
        {
            "services": [openai_service("openai", fake_openai.port, read_timeout="15s")],
            "rules": [{"name": "r", "targets": [{"service": "openai"}]}],
            "consumers": [{"name": "a", "keys": [KEY]}],
        }
    )
    fake_openai.gate.clear()
    body = {
        "model": "gated-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "a b c"}],
    }
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=8,
    ) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line)
        second = next(line for line in lines if line)
        # The upstream is still holding the rest of its answer back.
        assert not fake_openai.gate.is_set()
        assert first.startswith("data: ") and '"role":"assistant"' in first
        assert '"content":"Hello"' in second
        fake_openai.gate.set()
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"


def timed_out_line(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The access-log line of the request that ended with a 504 (it lands after the answer)."""
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "sluicegate.access"]
    found = [line for line in lines if line["status"] == 504]
    assert found, lines
    return found[0]


def capped(fake: FakeOpenAI) -> dict[str, Any]:
    """trickle-stream sends a word every 0.1 s for 10 s; the service allows streams 1 s."""
    return {
        "gateway": {"access_log": True},
        "services": [openai_service("openai", fake.port, retries=0, stream_timeout="1s")],
        "rules": [{"name": "r", "targets": [{"service": "openai"}]}],
        "consumers": [{"name": "a", "keys": [KEY]}],
    }


def test_a_stream_longer_than_stream_timeout_ends_with_a_timeout_event(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A steady stream (no gap near read_timeout) past the service's stream_timeout: the
    words so far, then the error event (504 timeout_error, code stream_timeout), no [DONE];
    the upstream's connection is closed and the access log (as the audit row) says so."""
    gateway = start_gateway(capped(fake_openai))
    cut_before = len(fake_openai.cut)
    body = {
        "model": "trickle-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="sluicegate.access"):
        with httpx.stream(
            "POST",
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=15,
        ) as response:
            assert response.status_code == 200
            events = [e for e in response.read().split(b"\n\n") if e]
        took = time.monotonic() - started
        line = eventually(lambda: timed_out_line(caplog))
    assert 0.9 < took < 3
    assert b"w05 " in b"".join(events) and b"[DONE]" not in b"".join(events)
    error = orjson.loads(events[-1].removeprefix(b"data: "))["error"]
    assert error["type"] == "timeout_error" and error["code"] == "stream_timeout"
    assert line["error_type"] == "stream_timeout"

    def upstream_cut() -> float:
        assert len(fake_openai.cut) > cut_before, "the upstream's stream was not cut"
        return fake_openai.cut[-1]

    assert eventually(upstream_cut) < 3


def test_a_translated_stream_past_stream_timeout_ends_with_anthropic_error_event(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = start_gateway(capped(fake_openai))
    body = {
        "model": "trickle-stream",
        "stream": True,
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "x"}],
    }
    with caplog.at_level(logging.INFO, logger="sluicegate.access"):
        with httpx.stream(
            "POST",
            gateway.url + "/v1/messages",
            json=body,
            headers={"x-api-key": KEY},
            timeout=15,
        ) as response:
            assert response.status_code == 200
            events = [e for e in response.read().split(b"\n\n") if e]
        line = eventually(lambda: timed_out_line(caplog))
    assert b"w05 " in b"".join(events) and b"message_stop" not in b"".join(events)
    name, data = events[-1].split(b"\n", 1)
    assert name == b"event: error"
    error = orjson.loads(data.removeprefix(b"data: "))
    assert error["error"]["type"] == "timeout_error"
    assert line["error_type"] == "stream_timeout"
