"""OpenTelemetry traces: a span per request, a child span per upstream attempt.

Attributes follow the GenAI semantic conventions (``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, …). A client's
``traceparent`` is honoured, and the attempt's context is sent upstream in
``traceparent``. With ``telemetry.otlp_endpoint`` unset there is no tracer
at all: the request path tests one attribute and moves on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sluicegate.telemetry.exchange import Exchange

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span

log = logging.getLogger("sluicegate")


class Tracing:
    """Owns one tracer provider (never the global one: no module-level state)."""

    def __init__(self, processor: SpanProcessor, service_name: str = "sluicegate") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("sluicegate")
        self.propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_config(cls, endpoint: str | None, service_name: str) -> Tracing | None:
        if not endpoint:
            return None
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning(
                "telemetry.otlp_endpoint is set but OpenTelemetry is not installed: "
                "pip install 'sluicegate[otel]'; tracing is off"
            )
            return None
        return cls(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)), service_name)

    def request_span(self, headers: list[tuple[bytes, bytes]], endpoint: str) -> Span:
        carrier = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS
        }
        context = self.propagator.extract(carrier) if carrier else None
        from opentelemetry.trace import SpanKind

        name = "chat" if endpoint == "chat" else endpoint
        return self.tracer.start_span(name, context=context, kind=SpanKind.SERVER)

    def attempt_span(self, parent: Span, service: str, provider: str, model: str) -> Span:
        from opentelemetry.trace import SpanKind, set_span_in_context

        span = self.tracer.start_span(
            f"upstream {service}", context=set_span_in_context(parent), kind=SpanKind.CLIENT
        )
        span.set_attribute("gen_ai.provider.name", provider)
        span.set_attribute("gen_ai.request.model", model)
        span.set_attribute("sluicegate.service", service)
        return span

    def inject(self, span: Span, headers: dict[str, str]) -> None:
        from opentelemetry.trace import set_span_in_context

        self.propagator.inject(headers, context=set_span_in_context(span))

    @staticmethod
    def finish(span: Span, ex: Exchange) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat" if ex.endpoint == "chat" else ex.endpoint,
            "http.response.status_code": ex.status,
            "sluicegate.request_id": ex.request_id,
            "sluicegate.attempts": ex.attempts,
        }
        optional = {
            "gen_ai.provider.name": ex.provider,
            "gen_ai.request.model": ex.model,
            "gen_ai.response.model": ex.upstream_model,
            "sluicegate.rule": ex.rule,
            "sluicegate.service": ex.service,
            "sluicegate.consumer": ex.consumer,
            "error.type": ex.error_type,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if ex.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = ex.usage.input
            attributes["gen_ai.usage.output_tokens"] = ex.usage.output
        if ex.cost is not None:
            attributes["sluicegate.cost_usd"] = ex.cost
        span.set_attributes(attributes)
        if ex.status >= 500 or ex.error_type is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, ex.error_type or ""))
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
