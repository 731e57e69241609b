"""An upstream that answers with broken bytes: what the client sees, what the audit holds.

Each case goes through the OpenAI pass-through path (``/v1/chat/completions`` to an
OpenAI service) and the translated one (``/v1/messages``, Anthropic's dialect, to the same
service), whole and streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.broken_upstream import BrokenUpstream
from tests.fakes.gateway import RunningGateway
from tests.reliability.conftest import (
    AUTH,
    CLIENT_KEY,
    audit_row,
    audited,
    seen,
    upstream_service,
)
from tests.security.leaks import Leaks

HUGE = 24 * 1024 * 1024


@pytest.fixture(scope="module")
def broken() -> Iterator[BrokenUpstream]:
    server = BrokenUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    broken: BrokenUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = {
        "gateway": {"max_body_bytes": 64 * 1024},
        "services": [upstream_service("broken", broken.port)],
        "rules": [{"name": "r", "targets": [{"service": "broken"}], "fallback_on": []}],
        "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
    }
    running = RunningGateway(audited(tmp_path_factory.mktemp("bodies"), config)).start()
    yield running
    running.stop()


def ask(gateway: RunningGateway, leaks: Leaks, dialect: str, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {"model": "m", "stream": stream}
    body["messages"] = [{"role": "user", "content": "hi"}]
    path = "/v1/chat/completions"
    if dialect == "anthropic":
        path, body["max_tokens"] = "/v1/messages", 16
    answer = httpx.post(gateway.url + path, json=body, headers=AUTH, timeout=30)
    return seen(leaks, answer)


def last_event(answer: httpx.Response) -> str:
    return answer.text.strip().split("\n\n")[-1]


@pytest.mark.parametrize("mode", ["malformed-json", "not-json", "invalid-utf8"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_an_unreadable_whole_answer_is_a_502_and_an_audit_row_saying_so(
    gateway: RunningGateway, broken: BrokenUpstream, leaks: Leaks, mode: str, dialect: str
) -> None:
    broken.mode = mode
    answer = ask(gateway, leaks, dialect, stream=False)
    assert answer.status_code == 502, answer.text
    assert "could not be read" in answer.text
    assert answer.headers["x-sluicegate-service"] == "broken"
    row = audit_row(gateway.url, answer.headers["x-request-id"])
    assert (row["status"], row["service"]) == (502, "broken")
    assert healthy(gateway, broken)


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_a_truncated_stream_ends_with_an_error_event_after_the_whole_events(
    gateway: RunningGateway, broken: BrokenUpstream, leaks: Leaks, dialect: str
) -> None:
    broken.mode = "truncated-sse"
    answer = ask(gateway, leaks, dialect, stream=True)
    assert answer.status_code == 200  # sent before the stream broke
    assert "ended its stream before it was complete" in last_event(answer)
    assert "[DONE]" not in answer.text
    *whole, _ = answer.text.strip().split("\n\n")
    assert all(event.endswith("}") for event in whole)  # the half event is never relayed
    assert "two" in answer.text
    row = audit_row(gateway.url, answer.headers["x-request-id"])
    assert row["status"] == 200 and row["error_type"] is not None
    assert healthy(gateway, broken)


def test_undecodable_stream_events_are_relayed_untouched_or_end_a_translated_stream(
    gateway: RunningGateway, broken: BrokenUpstream, leaks: Leaks
) -> None:
    for mode in ("invalid-utf8", "binary-sse"):
        broken.mode = mode
        # Pass-through: the gateway cuts events without decoding them.
        passthrough = ask(gateway, leaks, "openai", stream=True)
        assert passthrough.status_code == 200
        assert passthrough.content.rstrip().endswith(b"data: [DONE]")
        # Translated: the event must be decoded, and cannot be, so the stream ends there.
        translated = ask(gateway, leaks, "anthropic", stream=True)
        assert translated.status_code == 200
        assert last_event(translated).startswith("event: error")
        assert "unreadable stream event" in last_event(translated)
        assert "message_stop" not in translated.text
    assert healthy(gateway, broken)


@pytest.mark.parametrize("stream", [False, True])
def test_an_enormous_answer_arrives_whole(
    gateway: RunningGateway, broken: BrokenUpstream, leaks: Leaks, stream: bool
) -> None:
    broken.mode, broken.size = "huge", HUGE
    answer = ask(gateway, leaks, "openai", stream=stream)
    assert answer.status_code == 200
    assert len(answer.content) > HUGE
    if stream:
        assert answer.content.rstrip().endswith(b"data: [DONE]")
        assert answer.text.count("\n\n") == HUGE // (64 * 1024) + 2
    else:
        assert answer.json()["choices"][0]["message"]["content"] == "x" * HUGE
    row = audit_row(gateway.url, answer.headers["x-request-id"])
    assert row["status"] == 200
    assert healthy(gateway, broken)


def healthy(gateway: RunningGateway, broken: BrokenUpstream) -> bool:
    """The worker still answers: its probe and a normal request through the same upstream."""
    mode, broken.mode = broken.mode, "ok"
    try:
        probe = httpx.get(gateway.url + "/healthz", timeout=5)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        normal = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=AUTH)
        return (
            probe.status_code == 200 and normal.json()["choices"][0]["message"]["content"] == "fine"
        )
    finally:
        broken.mode = mode


def test_an_answer_above_max_answer_bytes_is_the_upstreams_failure(
    broken: BrokenUpstream, leaks: Leaks, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A whole answer past ``gateway.max_answer_bytes`` is never held: 502, and a stream
    (relayed as it comes, never held) still passes."""
    config = {
        "gateway": {"max_answer_bytes": 1024 * 1024},
        "services": [upstream_service("broken", broken.port)],
        "rules": [{"name": "r", "targets": [{"service": "broken"}], "fallback_on": []}],
        "consumers": [{"name": "team", "keys": [CLIENT_KEY]}],
    }
    running = RunningGateway(audited(tmp_path_factory.mktemp("capped"), config)).start()
    try:
        broken.mode, broken.size = "huge", HUGE
        whole = ask(running, leaks, "openai", stream=False)
        assert whole.status_code == 502 and whole.json()["error"]["type"] == "upstream_error"
        assert "above 1048576 bytes" in whole.json()["error"]["message"]
        assert ask(running, leaks, "openai", stream=True).status_code == 200
        assert healthy(running, broken)
    finally:
        running.stop()


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_answers_are_never_content_sniffed(
    gateway: RunningGateway, broken: BrokenUpstream, leaks: Leaks, dialect: str, stream: bool
) -> None:
    """An upstream's answer labelled text/html is relayed with the label it came with (on
    pass-through), and every data-plane answer tells browsers not to sniff its type."""
    broken.mode = "html-type"
    answer = ask(gateway, leaks, dialect, stream=stream)
    assert answer.status_code == 200
    if dialect == "openai" and not stream:
        assert answer.headers["content-type"].startswith("text/html")  # as it came
    assert answer.headers["x-content-type-options"] == "nosniff"
    # And the gateway's own answers: an error, the model list.
    refused = httpx.post(gateway.url + "/v1/chat/completions", json={}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["x-content-type-options"] == "nosniff"
    models = httpx.get(gateway.url + "/v1/models", headers=AUTH, timeout=10)
    assert models.headers["x-content-type-options"] == "nosniff"
    assert healthy(gateway, broken)
