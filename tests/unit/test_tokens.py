"""Prompt tokens before the call: tiktoken for OpenAI's models when it loads offline,
the documented approximation otherwise; and the text measured when usage is missing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.policies.rate_limit import Estimate, Reservation, estimate_tokens
from sluicegate.policies.tokens import PromptCounter, approximate, count_with, is_openai_model
from sluicegate.telemetry.usage import (
    TokenCounts,
    estimated_output,
    text_markers,
    text_size,
    text_size_of_chunk,
)

BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is a gateway?"}]},
    ],
}


class WordEncoding:
    """Stands for a tiktoken encoding: one token per word."""

    def encode_ordinary(self, text: str) -> list[str]:
        return text.split()


def test_openai_families() -> None:
    for model in ("gpt-4o", "gpt-3.5-turbo", "o1-mini", "o3", "o4-mini", "text-embedding-3-small"):
        assert is_openai_model(model)
    assert is_openai_model("openai/gpt-4o")
    for model in ("claude-sonnet-4", "gemini-2.0-flash", "llama-3-gpt-4", "mistral-large"):
        assert not is_openai_model(model)


def test_the_approximation_is_the_prompts_json_at_four_bytes_per_token() -> None:
    assert approximate(BODY) == len(orjson.dumps(BODY["messages"])) // 4
    assert approximate({"prompt": "x" * 40}) == len(b'"' + b"x" * 40 + b'"') // 4
    counter = PromptCounter()
    claude = {**BODY, "model": "claude-sonnet-4"}
    assert counter.count(claude) == approximate(claude)


def test_counting_with_an_encoding() -> None:
    # 3 for the reply's priming, 3 per message, then the words of each content.
    assert count_with(WordEncoding(), BODY) == 3 + (3 + 3) + (3 + 4)
    tools = {
        "messages": [
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "a b"}}]}
        ],
        "tools": [{"type": "function"}],
    }
    assert count_with(WordEncoding(), tools) == 3 + 3 + 1 + 2 + 1
    assert count_with(WordEncoding(), {"input": ["one two", "three"]}) == 3
    assert count_with(WordEncoding(), {"prompt": [[1, 2, 3], 7]}) == 4  # token ids


def test_tiktoken_not_cached_falls_back_once_without_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    loader = pytest.importorskip("tiktoken.load")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    loads: list[str] = []

    def no_download(path: str) -> bytes:
        loads.append(path)
        raise AssertionError("tiktoken tried to download")

    def get_encoding(name: str) -> Any:
        loads.append(name)
        raise AssertionError("get_encoding called for an encoding that is not cached")

    monkeypatch.setattr(loader, "read_file", no_download)
    monkeypatch.setattr(tiktoken, "get_encoding", get_encoding)
    counter = PromptCounter()
    assert counter.count(BODY) == approximate(BODY)
    assert counter.count(BODY) == approximate(BODY)
    assert counter.encoding("gpt-4o") is None
    assert loads == []
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's "no cache": would download
    assert PromptCounter().encoding("gpt-4o") is None
    # A damaged file in the cache: tiktoken would delete it and download again.
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not an encoding")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert PromptCounter().count(BODY) == approximate(BODY)
    assert loads == []


def test_tiktoken_counts_openai_prompts_when_it_loads_offline() -> None:
    counter = PromptCounter()
    encoding = counter.encoding("gpt-4o-mini")
    if encoding is None:
        pytest.skip("tiktoken or its o200k_base file is not available offline")
    assert counter.encoding("gpt-4o-mini") is encoding  # loaded once, kept
    expected = 3 + 3 + len(encoding.encode("You are terse.")) + 3
    expected += len(encoding.encode("What is a gateway?"))
    assert counter.count(BODY) == expected


def test_the_estimate_adds_the_completion() -> None:
    assert estimate_tokens({"prompt": "abcdefgh", "max_tokens": 5}, 1024) == Estimate(2, 5)
    body = {"prompt": "abcdefgh", "max_completion_tokens": 7, "max_tokens": 5}
    assert estimate_tokens(body, 1024).total == 9
    assert estimate_tokens({"prompt": "abcdefgh", "max_tokens": True}, 100) == Estimate(2, 100)
    assert estimate_tokens({"prompt": "abcdefgh"}, 100, PromptCounter(enabled=False)).total == 102


def test_generated_text_is_measured_from_the_bytes() -> None:
    chunk = (
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"Hi \\"you\\""}}]}\n\n'
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"a\\":1}"}}]}}]}'
        b"\n\n"
        b'data: {"choices":[{"delta":{"content":null},"logprobs":{"content":[{"token":"x"}]}}]}'
        b"\n\n"
    )
    openai = text_markers("openai", chunk)
    assert text_size(chunk, openai) == len(b'Hi \\"you\\"') + len(b'{\\"a\\":1}')
    assert text_size(b'{"content":"a\\\\","text":"b"}', openai) == 3 + 1  # a\\ and b
    anthropic = (
        b'event: content_block_start\ndata: {"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"delta":{"type":"text_delta","text":"abc"}}\n\n'
        b'data: {"delta":{"type":"input_json_delta","partial_json":"{\\"q\\""}}\n\n'
        b'data: {"delta":{"type":"thinking_delta","thinking":"hmm"}}\n\n'
        b'data: {"delta":{"type":"citations_delta","citation":{"cited_text":"ignored"}}}\n\n'
    )
    markers = text_markers("anthropic", anthropic)
    assert text_size(anthropic, markers) == 3 + len(b'{\\"q\\"') + 3
    spaced = b'{"choices": [{"text": "spaced out"}]}'
    assert text_size(spaced, text_markers("openai", spaced)) == len("spaced out")


def test_generated_text_of_a_decoded_chunk() -> None:
    chunk = {
        "choices": [
            {
                "delta": {
                    "content": "héllo",
                    "reasoning_content": "ab",
                    "tool_calls": [{"function": {"arguments": '{"x"'}}],
                }
            }
        ]
    }
    assert text_size_of_chunk(chunk) == 5 + 2 + 4
    assert text_size_of_chunk({"choices": [], "usage": {"prompt_tokens": 1}}) == 0


def test_counted_usage_rounds_the_text_up() -> None:
    assert [estimated_output(n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    reservation = Reservation([], [], estimate=Estimate(20, 500))
    assert reservation.counted_usage(9) == TokenCounts(20, 3, estimated=True)


def test_counts_with_a_loaded_tiktoken_encoding() -> None:
    """The counting path with tiktoken's real BPE engine; its OpenAI vocabularies need a
    download, so this one is built here from single bytes (one token per byte, plus one
    merge), which makes the expected counts exact."""
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"is"] = 256
    encoding = tiktoken.Encoding(
        name="bytes-test", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={}
    )
    counter = PromptCounter()
    assert counter.encoding("claude-3-5-haiku") is None  # not OpenAI's: no tokenizer
    counter._encodings["o200k_base"] = encoding  # as if loaded from tiktoken's cache
    if counter.encoding("gpt-4o-mini") is None:
        pytest.skip("tiktoken does not name an encoding for gpt-4o-mini")
    assert counter.encoding("gpt-4o-mini") is encoding
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "this is"}]}
    # "this is": t h i s (the merge "is" makes t h [is]) = 3, " " = 1, "is" = 1 → 5 tokens
    assert len(encoding.encode("this is")) == 5
    # OpenAI's framing: 3 per message (its role included) and 3 to prime the reply.
    assert counter.count(body) == 3 + 3 + 5
    assert counter.count({**body, "model": "claude-3-5-haiku"}) == approximate(body)
