"""The record of one request, filled in along the request path and read once at the end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sluicegate.telemetry.attempts import Tried
from sluicegate.telemetry.bodies import Bodies
from sluicegate.telemetry.usage import TokenCounts

if TYPE_CHECKING:
    from sluicegate.guardrails.policy import Screen
    from sluicegate.routing.stats import ArmStats


@dataclass(slots=True)
class Exchange:
    request_id: str
    gateway: str
    endpoint: str
    dialect: str
    started: float = field(default_factory=time.perf_counter)
    consumer: str | None = None
    key_prefix: str | None = None  # a minted key's visible prefix
    rule: str | None = None
    model: str | None = None  # the client's model, kept only once a rule matched (bounded labels)
    service: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    attempts: int = 0  # requests sent upstream
    fallbacks: int = 0
    tried: list[Tried] = field(default_factory=list)  # every step of the plan, in order
    upstream_seconds: float = 0.0  # time spent waiting on providers, every attempt
    first_token: float | None = None  # seconds from the start to the first streamed chunk
    ended: float = 0.0
    usage: TokenCounts | None = None
    text_size: int | None = None  # generated text seen, when an answer came (usage.text_size)
    cost: float | None = None
    cache: str | None = None
    bodies: Bodies | None = None  # only with audit.log_bodies: the audit row keeps them
    screen: Screen | None = None  # the rule's guardrails and transforms: verdicts, tags
    route: str | None = None  # why these targets (x-sluicegate-route, docs/routing.md)
    arm: ArmStats | None = None  # the statistics of the target that answered: its cost

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started
