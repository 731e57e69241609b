"""The OpenAI adapter: bytes pass through for OpenAI clients; others get a clean body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluicegate.errors import UpstreamError
from sluicegate.providers.openai import OpenAIAdapter
from tests.unit.providers.streams import feed_raising

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers" / "openai"
ADAPTER = OpenAIAdapter()


def case(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_an_openai_clients_bytes_pass_through() -> None:
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x-unknown":1}'
    built = ADAPTER.build("chat", json.loads(raw), raw, "gpt-4o-mini", "https://api.openai.com/v1")
    assert built.body is raw
    assert built.url == "https://api.openai.com/v1/chat/completions"


def test_a_translated_body_drops_fields_openai_refuses() -> None:
    fixture = case("request_translated_from_anthropic.json")
    built = ADAPTER.build("chat", fixture["canonical"], b"", fixture["model"], "https://h/v1")
    assert json.loads(built.body) == fixture["expected"]
    assert built.stream and built.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("size", [1, 2, 5, 17, 100, 10_000])
def test_the_stream_decodes_the_same_for_any_chunking(size: int) -> None:
    fixture = case("stream_text_and_tool.json")
    raw = fixture["provider_stream"].encode()
    decoder = ADAPTER.stream_decoder("chat", fixture["model"])
    chunks: list[dict[str, Any]] = []
    for start in range(0, len(raw), size):
        chunks += decoder.feed(raw[start : start + size])
    assert chunks == fixture["expected"]
    assert decoder.finished


def test_an_error_event_in_the_stream_is_raised() -> None:
    decoder = ADAPTER.stream_decoder("chat", "m")
    with pytest.raises(UpstreamError, match="overloaded"):
        feed_raising(decoder, b'data: {"error": {"message": "overloaded", "code": "busy"}}\n\n')


@pytest.mark.parametrize("endpoint", ["completions", "embeddings"])
def test_other_endpoints(endpoint: str) -> None:
    built = ADAPTER.build(endpoint, {"model": "m"}, b'{"model":"m"}', "m", "https://h/v1")
    assert built.url == f"https://h/v1/{endpoint}"
