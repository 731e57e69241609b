"""What happens to an ``Exchange`` when its request is done: cost, metrics, access log, audit.

It runs after the client has its last byte, so none of it adds to the
response time; it does no I/O beyond one log line when the access log is on
(the audit row goes on the audit writer's queue).
"""

from __future__ import annotations

import logging
import time

import orjson

from sluicegate.telemetry.audit import AuditWriter
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.metrics import Metrics
from sluicegate.telemetry.pricing import PriceTable

access = logging.getLogger("sluicegate.access")

_TOKEN_TYPES = ("input", "output", "cached", "cache_write", "reasoning")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if status else "none"


class Recorder:
    def __init__(self, metrics: Metrics, audit: AuditWriter | None = None) -> None:
        self.metrics = metrics
        self.audit = audit  # the audit log's writer: a queue put, no I/O here

    def record(self, ex: Exchange, prices: PriceTable, access_log: bool) -> None:
        if not ex.ended:
            ex.ended = time.perf_counter()
        if ex.usage is not None and ex.cost is None:
            ex.cost = prices.cost(ex.upstream_model or ex.model, ex.usage)
        m = self.metrics
        gateway, rule, service = ex.gateway, ex.rule or "", ex.service or ""
        provider, model, consumer = ex.provider or "", ex.model or "", ex.consumer or ""
        m.requests.labels(
            gateway, rule, service, provider, model, consumer, status_class(ex.status)
        ).inc()
        seconds = ex.ended - ex.started
        m.duration.labels(gateway, rule, service).observe(seconds)
        if ex.attempts:
            m.upstream.labels(gateway, service, provider).observe(ex.upstream_seconds)
            if ex.attempts > 1:
                m.retries.labels(gateway, rule).inc(ex.attempts - 1)
            if not ex.stream:
                m.overhead.labels(gateway).observe(max(seconds - ex.upstream_seconds, 0.0))
        if ex.fallbacks:
            m.fallbacks.labels(gateway, rule).inc()
        if ex.first_token is not None:
            m.first_token.labels(gateway, service, provider, model).observe(ex.first_token)
        if ex.usage is not None:
            for kind in _TOKEN_TYPES:
                count = getattr(ex.usage, kind)
                if count:
                    m.tokens.labels(gateway, service, provider, model, consumer, kind).inc(count)
        if ex.cost:
            m.cost.labels(gateway, provider, model, consumer).inc(ex.cost)
        if access_log:
            access.info(orjson.dumps(self.line(ex)).decode())
        if self.audit is not None:
            self.audit.submit(ex)

    @staticmethod
    def line(ex: Exchange) -> dict[str, object]:
        usage = ex.usage
        return {
            "request_id": ex.request_id,
            "gateway": ex.gateway,
            "endpoint": ex.endpoint,
            "consumer": ex.consumer,
            "rule": ex.rule,
            "service": ex.service,
            "provider": ex.provider,
            "model": ex.model,
            "upstream_model": ex.upstream_model,
            "status": ex.status,
            "error_type": ex.error_type,
            "stream": ex.stream,
            "latency_ms": round((ex.ended - ex.started) * 1000, 3),
            "ttft_ms": None if ex.first_token is None else round(ex.first_token * 1000, 3),
            "input_tokens": usage.input if usage else None,
            "output_tokens": usage.output if usage else None,
            "cached_tokens": usage.cached if usage else None,
            "cost_usd": ex.cost,
            "cache": ex.cache,
            "attempts": ex.attempts,
        }
