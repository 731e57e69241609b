"""Every provider's usage is known, streamed or not: the audit row and the metrics hold
exactly the usage the provider reported, whether or not the client asked for it in its
stream, and a client that did not ask gets no usage in its stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.conftest import PROVIDERS, Provider
from tests.conftest import KEY, logged_row
from tests.fakes.gateway import RunningGateway
from tests.fakes.server import FakeServer

ADMIN_KEY = "adm-usage-key-00001"
PRICE = {"input": 2.0, "output": 8.0, "cached_input": 0.5}  # USD per million tokens
# One model name per way of asking, so that each one's metrics stand apart.
WHOLE, ASKED, UNASKED = "metered-whole", "metered-asked", "metered-unasked"
MESSAGES: Any = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "count my tokens please"},
]


class _Nothing(FakeServer):
    """The mock provider lives in the gateway: nothing to fake."""

    def routes(self, app: web.Application) -> None:
        return None


MOCK = Provider("mock", _Nothing, lambda port: {"name": "mock", "provider": "mock"}, frozenset())


@pytest.fixture(scope="module", params=[*PROVIDERS, MOCK], ids=lambda p: p.name)
def metered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Provider, RunningGateway]]:
    spec: Provider = request.param
    folder: Path = tmp_path_factory.mktemp(spec.name)
    fake = spec.fake().start()
    gateway = RunningGateway(
        {
            "gateway": {"admin_key": ADMIN_KEY},
            "audit": {"path": str(folder / "audit.db"), "spill_path": str(folder / "spill")},
            "pricing": {model: PRICE for model in (WHOLE, ASKED, UNASKED)},
            "services": [spec.service(fake.port)],
            "rules": [  # named literally: metrics label only the models a rule names
                {
                    "name": "metered",
                    "match": {"models": [WHOLE, ASKED, UNASKED]},
                    "targets": [{"service": spec.name}],
                }
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()
    yield spec, gateway
    gateway.stop()
    fake.stop()


def _row(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as admin:
        return logged_row(admin, request_id, seconds=10)


def _metrics(gateway: RunningGateway, model: str) -> dict[str, float]:
    """The model's tokens by type, and its cost, from /metrics."""
    text = httpx.get(gateway.url + "/metrics").text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name == "sluicegate_tokens_total":
                kind = sample.labels["type"]
                out[kind] = out.get(kind, 0.0) + sample.value
            elif sample.name == "sluicegate_cost_usd_total":
                out["cost"] = out.get("cost", 0.0) + sample.value
    return out


def _cached(usage: Any) -> int:
    details = usage.prompt_tokens_details
    return (details.cached_tokens if details else 0) or 0


def _cost(usage: Any) -> float:
    cached = _cached(usage)
    fresh = usage.prompt_tokens - cached
    return (
        fresh * PRICE["input"]
        + cached * PRICE["cached_input"]
        + usage.completion_tokens * PRICE["output"]
    ) / 1e6


def test_usage_is_the_providers_whether_streamed_or_not(
    metered: tuple[Provider, RunningGateway],
) -> None:
    _, gateway = metered
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    whole = client.chat.completions.with_raw_response.create(model=WHOLE, messages=MESSAGES)
    whole_usage = whole.parse().usage
    assert whole_usage is not None

    asked = client.chat.completions.with_raw_response.create(
        model=ASKED, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    reported = [c.usage for c in asked.parse() if c.usage is not None]
    assert len(reported) == 1  # the client that asked has the provider's usage, once
    asked_usage = reported[0]

    unasked = client.chat.completions.with_raw_response.create(
        model=UNASKED, messages=MESSAGES, stream=True
    )
    chunks = list(unasked.parse())
    assert chunks and all(c.usage is None for c in chunks)  # it did not ask: none sent
    # The same question: the provider reports the same usage for it, asked or not.
    for request_id, model, usage in (
        (whole.headers["x-request-id"], WHOLE, whole_usage),
        (asked.headers["x-request-id"], ASKED, asked_usage),
        (unasked.headers["x-request-id"], UNASKED, asked_usage),
    ):
        row = _row(gateway, request_id)
        assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"] or 0) == (
            usage.prompt_tokens,
            usage.completion_tokens,
            _cached(usage),
        ), model
        assert row["usage_source"] == "provider", model
        assert row["cost_usd"] == pytest.approx(_cost(usage)), model
        metrics = _metrics(gateway, model)
        assert metrics.get("input") == usage.prompt_tokens, model
        assert metrics.get("output") == usage.completion_tokens, model
        assert metrics.get("cached", 0) == _cached(usage), model
        assert metrics.get("cost") == pytest.approx(_cost(usage)), model
    assert (asked_usage.prompt_tokens, asked_usage.completion_tokens) == (
        whole_usage.prompt_tokens,
        whole_usage.completion_tokens,
    )
