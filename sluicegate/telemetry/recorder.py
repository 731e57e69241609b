"""What happens to an ``Exchange`` when its request is done: cost, metrics, access log, audit.

It runs after the client has its last byte, so none of it adds to the
response time; it does no I/O beyond one log line when the access log is on
(the audit row goes on the audit writer's queue).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from sluicegate.routing.table import RoutingTable
from sluicegate.telemetry.audit import AuditWriter
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.labels import LabelNames
from sluicegate.telemetry.logs import ACCESS, utc_stamp
from sluicegate.telemetry.metrics import Metrics
from sluicegate.telemetry.pricing import PriceTable

access = logging.getLogger(ACCESS)

_TOKEN_TYPES = ("input", "output", "cached", "cache_write", "reasoning")


def status_class(status: int) -> str:
    return f"{status // 100}xx" if status else "none"


class Recorder:
    def __init__(self, metrics: Metrics, audit: AuditWriter | None = None) -> None:
        self.metrics = metrics
        self.audit = audit  # the audit log's writer: a queue put, no I/O here
        # prometheus_client's labels() validates and locks on every call; the
        # children of a route are the same request after request.
        self._children: dict[tuple[object, ...], Any] = {}
        # The label names each routing table allows, made on its first request. The table
        # is kept beside them so that its id is not reused while the entry lives.
        self._names: dict[int, tuple[RoutingTable, LabelNames]] = {}

    def names(self, table: RoutingTable) -> LabelNames:
        found = self._names.get(id(table))
        if found is None:
            if len(self._names) >= 16:  # tables replaced by config changes
                self._names.clear()
            found = self._names[id(table)] = (table, LabelNames.of(table))
        return found[1]

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 100_000:  # label values are bounded; this is a backstop
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, ex: Exchange, table: RoutingTable) -> None:
        if not ex.ended:
            ex.ended = time.perf_counter()
        prices = table.prices
        if ex.usage is not None and ex.cost is None:
            ex.cost = prices.cost(ex.upstream_model or ex.model, ex.usage)
        if ex.arm is not None and ex.cost:
            ex.arm.cost += ex.cost
        m, child, names = self.metrics, self._child, self.names(table)
        gateway, rule, service = ex.gateway, ex.rule or "", ex.service or ""
        provider, model, consumer = ex.provider or "", names.model(ex), names.consumer(ex.consumer)
        status = status_class(ex.status)
        answered = (gateway, rule, service, provider, model, consumer, ex.endpoint, status)
        child(m.requests, *answered).inc()
        seconds = ex.ended - ex.started
        child(m.duration, gateway, rule, service).observe(seconds)
        if ex.attempts:
            child(m.upstream, gateway, service, provider).observe(ex.upstream_seconds)
            if ex.attempts > 1:
                child(m.retries, gateway, rule).inc(ex.attempts - 1)
            if not ex.stream:
                child(m.overhead, gateway).observe(max(seconds - ex.upstream_seconds, 0.0))
        if ex.fallbacks:
            child(m.fallbacks, gateway, rule).inc()
        for tried in ex.tried:
            target = tried.target or ""
            child(m.attempts, gateway, tried.service, target, tried.outcome).inc()
            if tried.sent:
                labels = (gateway, tried.service, target, tried.outcome)
                child(m.attempt_duration, *labels).observe(tried.seconds)
        if ex.first_token is not None:
            child(m.first_token, gateway, service, provider, model).observe(ex.first_token)
        if ex.cache is not None:
            child(m.cache_lookups, gateway, rule, ex.cache).inc()
        if ex.cache == "hit":  # no provider was asked: its tokens and cost were saved
            self._saved(ex, prices)
        elif ex.usage is not None:
            for kind in _TOKEN_TYPES:
                count = getattr(ex.usage, kind)
                if count:
                    child(m.tokens, gateway, service, provider, model, consumer, kind).inc(count)
        if ex.cost and ex.cache != "hit":
            child(m.cost, gateway, provider, model, consumer).inc(ex.cost)
        if ex.screen is not None:
            for (on, kind, action), count in ex.screen.screening.verdicts.items():
                child(m.guardrails, gateway, rule, on, kind, action).inc(count)
        if table.access_log:
            stamp = {"ts": utc_stamp(time.time()), "level": "INFO"}  # as every log line has
            access.info(orjson.dumps({**stamp, **self.line(ex)}).decode())
        if self.audit is not None:
            self.audit.submit(ex)

    def _saved(self, ex: Exchange, prices: PriceTable) -> None:
        if ex.usage is None:
            return
        gateway, rule = ex.gateway, ex.rule or ""
        for kind in _TOKEN_TYPES:
            count = getattr(ex.usage, kind)
            if count:
                self._child(self.metrics.cache_saved_tokens, gateway, rule, kind).inc(count)
        saved = prices.cost(ex.upstream_model or ex.model, ex.usage)
        if saved:
            self._child(self.metrics.cache_saved_cost, gateway, rule).inc(saved)

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
            "usage_source": usage.source if usage else None,
            "cost_usd": ex.cost,
            "cache": ex.cache,
            "attempts": ex.attempts,
        }
