"""Spans per request and per attempt, with GenAI attributes; traceparent in and out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sluicegate.telemetry.tracing import Tracing
from tests.conftest import KEY, openai_service, wait_finished
from tests.fakes.faulty_server import FaultyUpstream
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(
    fake_openai: FakeOpenAI,
) -> Iterator[tuple[RunningGateway, InMemorySpanExporter, FaultyUpstream]]:
    broken = FaultyUpstream("broken").start()
    broken.mode = "503"
    gateway = RunningGateway(
        {
            "services": [
                openai_service("openai", fake_openai.port),
                {
                    "name": "broken",
                    "provider": "vllm",
                    "protocol": "http",
                    "host": "127.0.0.1",
                    "port": broken.port,
                    "retries": 0,
                },
            ],
            "rules": [
                {
                    "name": "chat",
                    "match": {"models": ["gpt-4o-mini"]},
                    "targets": [{"service": "broken", "model": "x"}],
                    "fallbacks": [{"service": "openai", "model": "gpt-4o-mini"}],
                }
            ],
            "consumers": [{"name": "team-a", "keys": [KEY]}],
        }
    )
    exporter = InMemorySpanExporter()
    app: Any = gateway.server.config.app
    app.proxy.tracing = Tracing(SimpleSpanProcessor(exporter))
    gateway.start()
    yield gateway, exporter, broken
    gateway.stop()
    broken.stop()


def test_request_and_attempt_spans_with_genai_attributes(
    traced: tuple[RunningGateway, InMemorySpanExporter, FaultyUpstream], fake_openai: FakeOpenAI
) -> None:
    gateway, exporter, broken = traced
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}", "traceparent": CLIENT_PARENT},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    wait_finished(gateway.url, 1)  # the request span ends just after the answer
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request = spans["chat"]
    assert format(request.context.trace_id, "032x") == TRACE_ID  # the client's trace continues
    attributes = dict(request.attributes or {})
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["sluicegate.attempts"] == 2
    failed, answered = spans["upstream broken"], spans["upstream openai"]
    for child in (failed, answered):
        assert child.parent is not None and child.parent.span_id == request.context.span_id
    assert dict(failed.attributes or {})["http.response.status_code"] == 503
    # The upstream got the attempt's own context, in the same trace.
    sent = fake_openai.last["headers"]["traceparent"]
    assert sent.split("-")[1] == TRACE_ID
    assert sent.split("-")[2] == format(answered.context.span_id, "016x")
    assert broken.last["headers"]["traceparent"].split("-")[1] == TRACE_ID


def test_errors_mark_the_span(
    traced: tuple[RunningGateway, InMemorySpanExporter, FaultyUpstream],
) -> None:
    gateway, exporter, _ = traced
    httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "unknown", "messages": [{"role": "user", "content": "hi"}]},
    )
    wait_finished(gateway.url, 1)  # the request span ends just after the answer
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})["error.type"] == "not_found_error"
    assert span.status.status_code.name == "ERROR"


def test_no_tracer_without_an_endpoint() -> None:
    assert Tracing.from_config(None, "sluicegate") is None
    assert Tracing.from_config("", "sluicegate") is None
