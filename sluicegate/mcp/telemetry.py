"""MCP metrics and audit rows: every tool call is counted, timed and recorded."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from sluicegate.telemetry.attempts import Tried
from sluicegate.telemetry.audit import AuditWriter
from sluicegate.telemetry.exchange import Exchange
from sluicegate.telemetry.metrics import Metrics

_NAME_LIMIT = 128  # MCP's longest tool name; a client's longer one is cut in its row
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class McpMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.calls = Counter(
            "sluicegate_mcp_tool_calls",
            "MCP tool calls by gateway, server, tool, consumer and outcome (ok, tool_error, or a "
            "failure)",
            ["gateway", "server", "tool", "consumer", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "sluicegate_mcp_tool_call_duration_seconds",
            "Time of an MCP tool call through the gateway, to its answer",
            ["gateway", "server", "tool"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            "sluicegate_mcp_server_up",
            "1 while an MCP server answers, 0 while it is left out of lists",
            ["gateway", "server"],
            registry=registry,
        )
        self.left_out = Counter(
            "sluicegate_mcp_server_left_out",
            "Times an MCP server was left out of an aggregated answer (down or slow)",
            ["gateway", "server", "reason"],
            registry=registry,
        )


class CallRecord:
    """One tool call, from the client's message to its answer."""

    __slots__ = (
        "consumer",
        "gateway",
        "key_prefix",
        "labels",
        "request_id",
        "server",
        "started",
        "step",
        "target",
        "tool",
    )

    def __init__(
        self,
        request_id: str,
        gateway: str,
        consumer: str,
        key_prefix: str | None,
        server: str,
        tool: str,
        labels: tuple[str, str],
        target: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.gateway = gateway
        self.consumer = consumer
        self.key_prefix = key_prefix
        self.server = server
        self.tool = tool[:_NAME_LIMIT]  # as the client gave it, within reason
        self.labels = labels  # (server, tool) as metrics name them: known names only
        self.started = time.perf_counter()
        self.target = target  # where the server is reached, never a secret
        # The outcome of the message to the server (attempts.OUTCOMES), as a chat row's
        # attempt: None while nothing was sent.
        self.step: str | None = None

    def finish(
        self,
        metrics: McpMetrics,
        audit: AuditWriter | None,
        status: int,
        outcome: str,
        error_type: str | None = None,
    ) -> None:
        ended = time.perf_counter()
        server, tool = self.labels
        metrics.calls.labels(self.gateway, server, tool, self.consumer, outcome).inc()
        metrics.duration.labels(self.gateway, server, tool).observe(ended - self.started)
        if audit is None:
            return
        ex = Exchange(
            self.request_id,
            self.gateway,
            "mcp",
            "mcp",
            started=self.started,
            consumer=self.consumer,
            key_prefix=self.key_prefix,
            service=self.server,
            provider="mcp",
            model=self.tool,
            status=status,
            error_type=error_type,
            attempts=0 if self.step is None else 1,
            ended=ended,
        )
        if self.step is not None:
            answered = 200 if self.step == "2xx" else None
            sent = Tried(self.server, self.target, self.step, answered, ended - self.started)
            ex.tried.append(sent)
        audit.submit(ex)
