"""`sluicegate serve` tunes the garbage collector once started; tests' gateways do not."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import MutableMapping
from typing import Any

from sluicegate.app import create_app
from sluicegate.config.load import parse_config
from sluicegate.gc_tuning import YOUNG_THRESHOLD
from sluicegate.runtime import Runtime

CONFIG = {
    "gateway": {"name": "gc-tuning"},
    "services": [{"name": "mock", "provider": "mock"}],
    "rules": [{"name": "chat", "match": {"models": ["m"]}, "targets": [{"service": "mock"}]}],
    "audit": {"enabled": False},
}


def settings_once_started(tune_gc: bool) -> tuple[int, int]:
    """(first-generation threshold, frozen objects) when start-up reports complete."""
    app = create_app(Runtime(parse_config(CONFIG, env={})), tune_gc=tune_gc)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    seen: list[tuple[int, int]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))

    saved = gc.get_threshold()
    try:
        asyncio.run(app.lifespan(receive, send))
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
    assert len(seen) == 1
    return seen[0]


def test_serving_raises_the_young_threshold_and_freezes_what_start_up_built() -> None:
    threshold, frozen = settings_once_started(tune_gc=True)
    assert threshold == YOUNG_THRESHOLD
    assert frozen > 10_000  # modules, config and routing table


def test_an_app_built_for_tests_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    threshold, frozen = settings_once_started(tune_gc=False)
    assert threshold == gc.get_threshold()[0] != YOUNG_THRESHOLD
    assert frozen == 0
