"""The exact response cache (docs/cache.md): against the fake OpenAI upstream, which
counts the requests it gets per model, so a hit is seen never to reach it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis

from tests.conftest import KEY, OTHER_KEY, openai_service, wait_finished
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

Start = Callable[[dict[str, Any]], RunningGateway]
REDIS_URL = "redis://127.0.0.1:6379/0"


def unique(name: str) -> str:
    """A model name of this test only: the fake counts requests per model."""
    return f"{name}-{os.urandom(4).hex()}"


def config(
    fake: FakeOpenAI, cache: dict[str, Any], gateway: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "gateway": gateway or {},
        "services": [openai_service("openai", fake.port)],
        "rules": [
            {"name": "chat", "targets": [{"service": "openai"}], "policies": {"cache": cache}}
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}, {"name": "team-b", "keys": [OTHER_KEY]}],
        "audit": {"enabled": False},
    }


def post(
    gateway: RunningGateway,
    model: str,
    text: str = "What is the capital of France?",
    key: str = KEY,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response


def test_the_second_identical_request_never_reaches_the_upstream(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact", "ttl": "5m"}))
    model = unique("cache-exact")
    first = post(gateway, model)
    second = post(gateway, model)
    assert fake_openai.calls[model] == 1
    assert first.headers["x-sluicegate-cache"] == "miss"
    assert second.headers["x-sluicegate-cache"] == "hit"
    assert second.headers["x-sluicegate-attempts"] == "0"
    assert second.headers["x-sluicegate-service"] == "openai"
    a, b = first.json(), second.json()
    assert b["choices"][0]["message"] == a["choices"][0]["message"]
    assert b["usage"] == a["usage"]
    assert b["id"] != a["id"]  # a fresh answer, not the stored one's id


def test_a_streamed_answer_replays_with_the_same_text_and_usage(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    model = unique("cache-stream")
    messages: Any = [{"role": "user", "content": "Tell me about the river and the sea"}]

    def run() -> tuple[str, Any, str]:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        text, usage = "", None
        for chunk in raw.parse():
            for choice in chunk.choices:
                text += choice.delta.content or ""
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
        return text, usage, raw.headers["x-sluicegate-cache"]

    original, original_usage, first = run()
    wait_finished(gateway.url, 1)  # a stream is stored once it ended, after its last event
    replayed, replayed_usage, second = run()
    assert (first, second) == ("miss", "hit")
    assert replayed == original and original
    assert replayed_usage == original_usage and original_usage is not None
    assert fake_openai.calls[model] == 1
    # The stream flag is not part of the key: a whole answer comes from the same entry.
    whole = client.chat.completions.create(model=model, messages=messages)
    assert whole.choices[0].message.content == original
    assert fake_openai.calls[model] == 1


def test_a_stream_whose_client_asked_no_usage_is_stored_with_the_providers_usage(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)
    model = unique("cache-stream-no-usage")
    messages: Any = [{"role": "user", "content": "Tell me about the hills"}]
    streamed = client.chat.completions.create(model=model, messages=messages, stream=True)
    assert all(chunk.usage is None for chunk in streamed)  # the client did not ask
    wait_finished(gateway.url, 1)
    whole = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    assert whole.headers["x-sluicegate-cache"] == "hit"
    usage = whole.parse().usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert fake_openai.calls[model] == 1


def test_an_anthropic_client_gets_the_cached_answer_in_its_own_dialect(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    model = unique("cache-dialects")
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    kwargs: Any = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Say something kind"}],
    }
    first = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert fake_openai.calls[model] == 1
    assert first.content[0].type == "text"
    assert streamed == first.content[0].text
    assert final.usage.output_tokens == first.usage.output_tokens


def test_openai_and_anthropic_clients_share_entries_for_a_non_anthropic_target(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    """The Anthropic SDK's ``anthropic-version`` header does not split the key when the
    target is not Anthropic (docs/cache.md): either SDK answers the other's question."""
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    model = unique("cache-across")
    text = "Name a prime number"
    first = post(gateway, model, text=text, max_tokens=50)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": text}]
    )
    assert raw.headers["x-sluicegate-cache"] == "hit"
    answer = raw.parse()
    assert answer.content[0].type == "text"
    assert answer.content[0].text == first.json()["choices"][0]["message"]["content"]
    # Another API version (an older or newer SDK) shares the entry too.
    again = httpx.post(
        gateway.url + "/v1/messages",
        json={"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]},
        headers={"x-api-key": KEY, "anthropic-version": "2099-01-01"},
        timeout=10,
    )
    assert again.status_code == 200, again.text
    assert again.headers["x-sluicegate-cache"] == "hit"
    assert fake_openai.calls[model] == 1


def test_entries_expire_after_their_ttl(fake_openai: FakeOpenAI, start_gateway: Start) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact", "ttl": "400ms"}))
    model = unique("cache-ttl")
    post(gateway, model)
    assert post(gateway, model).headers["x-sluicegate-cache"] == "hit"
    time.sleep(0.5)
    assert post(gateway, model).headers["x-sluicegate-cache"] == "miss"
    assert fake_openai.calls[model] == 2
    # A client may ask for a shorter life than the rule's, never a longer one.
    short = unique("cache-ttl-header")
    post(gateway, short, headers={"x-sluicegate-cache-ttl": "0.2"})
    time.sleep(0.3)
    assert post(gateway, short).headers["x-sluicegate-cache"] == "miss"
    long = unique("cache-ttl-long")
    post(gateway, long, headers={"x-sluicegate-cache-ttl": "3600"})
    time.sleep(0.5)
    assert post(gateway, long).headers["x-sluicegate-cache"] == "miss"


def test_no_cache_skips_the_lookup_and_no_store_skips_both(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    model = unique("cache-control")
    post(gateway, model)
    fresh = post(gateway, model, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-sluicegate-cache"] == "bypass"
    assert fake_openai.calls[model] == 2
    assert post(gateway, model).headers["x-sluicegate-cache"] == "hit"

    other = unique("cache-no-store")
    kept = post(gateway, other, headers={"Cache-Control": "no-store"})
    assert kept.headers["x-sluicegate-cache"] == "bypass"
    assert post(gateway, other).headers["x-sluicegate-cache"] == "miss"  # nothing was stored
    assert fake_openai.calls[other] == 2

    bad = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": other, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {KEY}", "x-sluicegate-cache-ttl": "soon"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "x-sluicegate-cache-ttl"


def test_different_tools_or_temperature_miss(fake_openai: FakeOpenAI, start_gateway: Start) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    model = unique("cache-params")
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    other_tool = {"type": "function", "function": {"name": "search", "parameters": {}}}
    post(gateway, model, temperature=0.2)
    assert post(gateway, model, temperature=0.2).headers["x-sluicegate-cache"] == "hit"
    assert post(gateway, model, temperature=0.9).headers["x-sluicegate-cache"] == "miss"
    post(gateway, model, tools=[tool])
    assert post(gateway, model, tools=[tool]).headers["x-sluicegate-cache"] == "hit"
    assert post(gateway, model, tools=[other_tool]).headers["x-sluicegate-cache"] == "miss"
    # Fields that do not change the answer share the entry.
    assert post(gateway, model, user="someone").headers["x-sluicegate-cache"] == "miss"
    assert post(gateway, model, temperature=0.2, user="x").headers["x-sluicegate-cache"] == "hit"
    assert fake_openai.calls[model] == 5


@pytest.mark.parametrize("mode", ["exact", "semantic"])
def test_consumers_do_not_share_entries_unless_told_to(
    fake_openai: FakeOpenAI, start_gateway: Start, mode: str
) -> None:
    """By default a hit never tells one consumer what another asked (by the header or the
    latency of a hit); ``scope: rule`` shares a rule's entries among its consumers."""
    apart = start_gateway(config(fake_openai, {"mode": mode}))
    model = unique(f"cache-scope-{mode}")
    assert post(apart, model, key=KEY).headers["x-sluicegate-cache"] == "miss"
    assert post(apart, model, key=OTHER_KEY).headers["x-sluicegate-cache"] == "miss"
    assert post(apart, model, key=KEY).headers["x-sluicegate-cache"] == "hit"
    assert post(apart, model, key=OTHER_KEY).headers["x-sluicegate-cache"] == "hit"
    assert fake_openai.calls[model] == 2

    shared = start_gateway(config(fake_openai, {"mode": mode, "scope": "rule"}))
    model = unique(f"cache-scope-shared-{mode}")
    post(shared, model, key=KEY)
    assert post(shared, model, key=OTHER_KEY).headers["x-sluicegate-cache"] == "hit"
    assert fake_openai.calls[model] == 1


def test_a_failed_answer_is_not_stored(fake_openai: FakeOpenAI, start_gateway: Start) -> None:
    gateway = start_gateway(config(fake_openai, {"mode": "exact"}))
    for _ in range(2):
        response = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "fail-500", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert response.status_code == 502
        assert response.headers["x-sluicegate-cache"] == "miss"


def test_a_rule_without_a_cache_says_nothing_about_one(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    cfg = config(fake_openai, {"mode": "off"})
    gateway = start_gateway(cfg)
    model = unique("cache-off")
    post(gateway, model)
    assert "x-sluicegate-cache" not in post(gateway, model).headers
    assert fake_openai.calls[model] == 2


def test_hits_are_counted_with_the_tokens_and_cost_they_saved(
    fake_openai: FakeOpenAI, start_gateway: Start, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(fake_openai, {"mode": "exact"}, {"access_log": True})
    gateway = start_gateway(cfg)
    model = "gpt-4o-mini"  # priced by the package's table
    text = unique("What does the cache save")
    caplog.set_level("INFO", logger="sluicegate.access")
    post(gateway, model, text)
    post(gateway, model, text)
    labels = 'gateway="default"'  # the exposition sorts labels by name
    wait_finished(gateway.url, 2)  # recorded just after the client has its answer
    metrics = httpx.get(gateway.url + "/metrics").text

    def value(line_start: str) -> float:
        found = [ln for ln in metrics.splitlines() if ln.startswith(line_start)]
        assert found, line_start
        return float(found[0].rsplit(" ", 1)[1])

    assert value(f'sluicegate_cache_lookups_total{{{labels},result="hit",rule="chat"}}') == 1
    assert value(f'sluicegate_cache_lookups_total{{{labels},result="miss",rule="chat"}}') == 1
    assert value(f'sluicegate_cache_saved_tokens_total{{{labels},rule="chat",type="output"}}') > 0
    assert value(f'sluicegate_cache_saved_cost_usd_total{{{labels},rule="chat"}}') > 0
    lines = [r.getMessage() for r in caplog.records if r.name == "sluicegate.access"]
    hit = next(line for line in lines if '"cache":"hit"' in line)
    assert '"cost_usd":0.0' in hit and '"attempts":0' in hit


def test_the_redis_backend_is_shared_by_two_gateway_processes(
    fake_openai: FakeOpenAI, start_gateway: Start
) -> None:
    name = unique("cache-gw")
    cfg = config(fake_openai, {"mode": "exact"}, {"name": name, "redis": REDIS_URL})
    first, second = start_gateway(cfg), start_gateway(cfg)
    model = unique("cache-redis")
    assert post(first, model).headers["x-sluicegate-cache"] == "miss"
    store = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 5
    while not store.keys(f"sluicegate:cache:{name}:*"):  # stored just after the answer
        assert time.monotonic() < deadline
        time.sleep(0.01)
    hit = post(second, model)
    assert hit.headers["x-sluicegate-cache"] == "hit"
    assert fake_openai.calls[model] == 1
    # Another gateway (tenant) on the same Redis never sees these entries.
    other_cfg = {"name": unique("cache-other"), "redis": REDIS_URL}
    other = start_gateway(config(fake_openai, {"mode": "exact"}, other_cfg))
    assert post(other, model).headers["x-sluicegate-cache"] == "miss"
    store.delete(*store.keys(f"sluicegate:cache:{name}:*"))


def test_audit_rows_of_hits_say_hit_at_zero_cost(
    fake_openai: FakeOpenAI, start_gateway: Start, tmp_path: Path
) -> None:
    path = tmp_path / "audit.db"
    cfg = config(fake_openai, {"mode": "exact"})
    cfg["audit"] = {"path": str(path), "flush_interval": "50ms"}
    gateway = start_gateway(cfg)
    text = unique("Audit me")
    post(gateway, "gpt-4o-mini", text)
    post(gateway, "gpt-4o-mini", text)
    deadline = time.monotonic() + 5
    rows: list[Any] = []
    while len(rows) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT cache, cost_usd, output_tokens, attempts FROM sluicegate_audit "
                "ORDER BY cache"
            ).fetchall()
    (hit_cache, hit_cost, hit_tokens, hit_attempts), (miss_cache, miss_cost, miss_tokens, _) = rows
    assert (hit_cache, hit_cost, hit_attempts) == ("hit", 0.0, 0)
    assert miss_cache == "miss" and miss_cost > 0
    assert hit_tokens == miss_tokens > 0  # the tokens the hit saved
