"""Every provider's usage shape becomes the same audit row: tokens as the client saw
them, and a cost that matches the price table (cached input priced apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conformance.conftest import PROVIDERS, Provider
from tests.conftest import KEY, logged_row
from tests.fakes.gateway import RunningGateway

ADMIN_KEY = "adm-cost-key-000001"
# USD per million tokens, chosen so that every kind of token has its own price.
PRICE = {"input": 3.0, "output": 15.0, "cached_input": 0.3}


@pytest.fixture(scope="module", params=PROVIDERS, ids=lambda p: p.name)
def priced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Provider, RunningGateway]]:
    spec: Provider = request.param
    folder: Path = tmp_path_factory.mktemp(spec.name)
    fake = spec.fake().start()
    gateway = RunningGateway(
        {
            "gateway": {"admin_key": ADMIN_KEY},
            "audit": {"path": str(folder / "audit.db"), "spill_path": str(folder / "spill")},
            "pricing": {"priced-model": PRICE},
            "services": [spec.service(fake.port)],
            "rules": [
                {"name": "all", "match": {"models": ["*"]}, "targets": [{"service": spec.name}]}
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


def _expected(prompt: int, cached: int, completion: int) -> float:
    fresh = prompt - cached
    return (
        fresh * PRICE["input"] + cached * PRICE["cached_input"] + completion * PRICE["output"]
    ) / 1e6


def test_cost_follows_the_price_table(priced: tuple[Provider, RunningGateway]) -> None:
    spec, gateway = priced
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    messages: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello"},
    ]
    whole = client.chat.completions.with_raw_response.create(
        model="priced-model", messages=messages
    )
    answer = whole.parse()
    usage = answer.usage
    assert usage is not None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    cached = cached or 0
    if "cached_usage" in spec.capabilities:
        assert cached > 0  # so that the cached price is exercised
    row = _row(gateway, whole.headers["x-request-id"])
    assert row["provider"] == spec.service(0)["provider"]
    assert (row["input_tokens"], row["output_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert (row["cached_tokens"] or 0) == cached
    assert row["cost_usd"] == pytest.approx(
        _expected(usage.prompt_tokens, cached, usage.completion_tokens)
    )

    stream = client.chat.completions.with_raw_response.create(
        model="priced-model",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream.parse())
    final = next(c.usage for c in reversed(chunks) if c.usage is not None)
    streamed = _row(gateway, stream.headers["x-request-id"])
    details = final.prompt_tokens_details
    streamed_cached = (details.cached_tokens if details else 0) or 0
    assert (streamed["input_tokens"], streamed["output_tokens"]) == (
        final.prompt_tokens,
        final.completion_tokens,
    )
    assert streamed["cost_usd"] == pytest.approx(
        _expected(final.prompt_tokens, streamed_cached, final.completion_tokens)
    )
