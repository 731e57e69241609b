"""Streams are relayed event by event, as they arrive, not buffered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import KEY, openai_service
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
