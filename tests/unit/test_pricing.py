from __future__ import annotations

import pytest

from sluicegate.providers.models import ModelCatalog, Override
from sluicegate.telemetry.pricing import Price, PriceTable
from sluicegate.telemetry.usage import TokenCounts, read_usage, usage_of_events


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2"),
        ("models/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("command-a-03-2025", "command-a"),
    ],
)
def test_models_find_their_price(model: str, expected: str) -> None:
    table = PriceTable()
    assert table.price(model) is table.price(expected) is not None


def test_unknown_models_have_no_price() -> None:
    assert PriceTable().price("my-finetune") is None
    assert PriceTable().cost("my-finetune", TokenCounts(10, 10)) is None


def test_cost_prices_cached_input_cache_writes_and_output_separately() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = TokenCounts(
        input=1_000_000 + 200_000 + 100_000, output=500_000, cached=200_000, cache_write=100_000
    )
    expected = 1.0 * 3.0 + 0.2 * 0.3 + 0.1 * 3.75 + 0.5 * 15.0
    assert price.cost(usage) == pytest.approx(expected)


def test_reasoning_tokens_priced_apart_only_when_the_table_says_so() -> None:
    usage = TokenCounts(input=0, output=1_000_000, reasoning=400_000)
    assert Price(1, 10).cost(usage) == pytest.approx(10)
    assert Price(1, 10, reasoning=20).cost(usage) == pytest.approx(0.6 * 10 + 0.4 * 20)


def test_overrides_win() -> None:
    table = PriceTable({"gpt-4o-mini": Price(1, 2), "my-finetune": Price(5, 5)})
    assert table.cost("gpt-4o-mini", TokenCounts(1_000_000, 1_000_000)) == pytest.approx(3)
    assert table.cost("my-finetune-v2", TokenCounts(1_000_000, 0)) == pytest.approx(5)


def test_usage_shapes() -> None:
    openai = read_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert openai == TokenCounts(input=10, output=5, cached=4, reasoning=2)
    anthropic = read_usage(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 4,
            "cache_creation_input_tokens": 1,
        }
    )
    assert anthropic == TokenCounts(input=15, output=5, cached=4, cache_write=1)
    assert read_usage(None) is None


def test_anthropic_stream_usage_merges_start_and_delta() -> None:
    start = (
        b'event: message_start\ndata: {"type":"message_start",'
        b'"message":{"usage":{"input_tokens":7,"output_tokens":1}}}\n\n'
    )
    delta = b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":12}}\n\n'
    counts = usage_of_events(start, None)
    counts = usage_of_events(b"event: ping\ndata: {}\n\n" + delta, counts)
    assert counts == TokenCounts(input=7, output=12)


def test_openai_stream_usage_comes_from_the_last_chunk() -> None:
    events = (
        b'data: {"choices":[],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'
    )
    assert usage_of_events(events, None) == TokenCounts(3, 4)


def test_audio_input_tokens_have_a_price_of_their_own_that_overrides_keep() -> None:
    usage = TokenCounts(input=120, output=40, audio=100)
    price = PriceTable().price("gpt-4o-transcribe")
    assert price is not None and price.audio_input == 6.0
    assert price.cost(usage) == pytest.approx((100 * 6 + 20 * 2.5 + 40 * 10) / 1e6)
    # Without an audio price, audio tokens are input tokens like any other.
    assert Price(2.5, 10.0).cost(usage) == pytest.approx((120 * 2.5 + 40 * 10) / 1e6)
    # A models: entry that sets another field keeps the built-in audio price...
    kept = ModelCatalog([("gpt-4o-transcribe", Override(input=3.0))]).info("gpt-4o-transcribe")
    assert kept is not None and kept.price is not None and kept.price.audio_input == 6.0
    # ...and can set its own; a pricing: entry is a whole price of its own.
    own = ModelCatalog([("gpt-4o-transcribe", Override(audio_input=7.0))]).info("gpt-4o-transcribe")
    assert own is not None and own.price is not None and own.price.audio_input == 7.0
    whole = Override(input=1.0, output=2.0, whole_price=True)
    replaced = ModelCatalog([("gpt-4o-transcribe", whole)]).info("gpt-4o-transcribe")
    assert replaced is not None and replaced.price is not None
    assert replaced.price.audio_input is None
