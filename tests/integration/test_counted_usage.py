"""Answers whose provider reports no usage are settled with the gateway's count of the
text, and a client that leaves mid-stream stops the upstream and settles what was sent."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from tests.conftest import KEY, eventually, openai_service, settled, wait_finished
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

Start = Callable[[dict[str, Any]], RunningGateway]
LIMIT = 100_000
MAX_TOKENS = 500
MESSAGES = [{"role": "user", "content": "count the words of this answer please"}]
PROMPT = len(orjson.dumps(MESSAGES)) // 4  # the documented approximation (not an OpenAI model)


def config(fake: FakeOpenAI) -> dict[str, Any]:
    return {
        "gateway": {"name": f"t{uuid.uuid4().hex[:8]}", "access_log": True},
        "services": [openai_service("openai", fake.port, retries=0)],
        "rules": [
            {
                "name": "counted",
                "match": {"models": ["no-usage*", "trickle-stream", "fake-*"]},
                "targets": [{"service": "openai"}],
                "policies": {"rate_limit": {"tokens": LIMIT, "window": "1h"}},
            }
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
    }


def ask(url: str, model: str, **body: Any) -> httpx.Response:
    """One request, returned once the gateway settled it: the next request's rate-limit
    headers count what this one used, which is settled after the client has its answer."""
    return settled(
        url,
        lambda: httpx.post(
            url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": model, "messages": MESSAGES, "max_tokens": MAX_TOKENS, **body},
            timeout=10,
        ),
    )


def used_before(response: httpx.Response) -> int:
    """Tokens counted in the window before this request reserved its estimate."""
    remaining = int(response.headers["x-ratelimit-remaining-tokens"])
    return LIMIT - remaining - (PROMPT + MAX_TOKENS)


def streamed_text(response: httpx.Response) -> str:
    text = ""
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "sluicegate.access"]


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_stream_without_usage_is_settled_from_its_text(
    start_gateway: Start,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    include_usage: bool,
) -> None:
    gateway = start_gateway(config(fake_openai))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    with caplog.at_level(logging.INFO, logger="sluicegate.access"):
        first = ask(gateway.url, "no-usage", stream=True, **extra)
        assert first.status_code == 200
        assert '"usage"' not in first.text  # the provider reported none
        second = ask(gateway.url, "no-usage")
    output = math.ceil(len(streamed_text(first)) / 4)
    assert output > 1
    assert used_before(first) == 0
    # The stream was settled to its prompt estimate plus its text, not its reservation.
    assert used_before(second) == PROMPT + output
    line = access_lines(caplog)[0]
    assert (line["status"], line["input_tokens"], line["output_tokens"]) == (200, PROMPT, output)


def test_a_whole_answer_without_usage_is_settled_from_its_text(
    start_gateway: Start, fake_openai: FakeOpenAI
) -> None:
    gateway = start_gateway(config(fake_openai))
    first = ask(gateway.url, "no-usage")
    assert first.status_code == 200 and "usage" not in first.json()
    output = math.ceil(len(first.json()["choices"][0]["message"]["content"]) / 4)
    assert used_before(ask(gateway.url, "no-usage")) == PROMPT + output


def test_reported_usage_wins_over_the_count(start_gateway: Start, fake_openai: FakeOpenAI) -> None:
    gateway = start_gateway(config(fake_openai))
    first = ask(gateway.url, "fake-model", stream=True, stream_options={"include_usage": True})
    usage = orjson.loads(first.text.split("data: ")[-2])["usage"]
    assert used_before(ask(gateway.url, "fake-model")) == usage["total_tokens"]


def test_a_translated_stream_without_usage_is_settled_from_its_text(
    start_gateway: Start, fake_openai: FakeOpenAI
) -> None:
    # An Anthropic client in front of an OpenAI provider: the Translated relay counts.
    gateway = start_gateway(config(fake_openai))
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    with client.messages.stream(
        model="no-usage", max_tokens=MAX_TOKENS, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello from the fake")
    wait_finished(gateway.url, 1)  # the stream is settled after its last event
    after = ask(gateway.url, "no-usage")
    # The Anthropic request's prompt estimate is that of its canonical form, as above.
    assert used_before(after) == PROMPT + math.ceil(len(text) / 4)


def test_a_client_that_leaves_mid_stream_stops_the_upstream(
    start_gateway: Start, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = start_gateway(config(fake_openai))
    cut_before = len(fake_openai.cut)
    body = {"model": "trickle-stream", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    body["stream"] = True
    headers = {"Authorization": f"Bearer {KEY}"}
    with caplog.at_level(logging.INFO, logger="sluicegate.access"):
        with httpx.stream(
            "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        ) as response:
            assert response.status_code == 200
            events = 0
            for line in response.iter_lines():
                events += line.startswith("data: ")
                if events == 3:
                    break  # leaving the block closes the connection
        deadline = time.monotonic() + 5
        while len(fake_openai.cut) == cut_before or not access_lines(caplog):
            assert time.monotonic() < deadline, "the upstream stream was not cut"
            time.sleep(0.05)
        after = ask(gateway.url, "no-usage")
    # The upstream saw its connection closed long before its 10 s stream would end.
    assert fake_openai.cut[-1] < 3
    line = next(x for x in access_lines(caplog) if x["model"] == "trickle-stream")
    assert line["status"] == 499 and line["error_type"] == "client_disconnected"
    # Settled with what was relayed: the 3 words read, and the few sent while the client
    # was leaving, 4 characters ("w00 ") and so one token each; far from the 500 reserved.
    assert line["input_tokens"] == PROMPT
    assert 3 <= line["output_tokens"] <= 10
    assert used_before(after) == PROMPT + line["output_tokens"]
    metrics = httpx.get(gateway.url + "/metrics").text.splitlines()
    assert any(
        m.startswith("sluicegate_requests_total{")
        and 'model="trickle-stream"' in m
        and '"4xx"' in m
        for m in metrics
    )


def test_a_count_is_recorded_and_marked_as_counted_without_any_limit(
    start_gateway: Start, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # No rate limit on the rule: the answer is counted all the same, and the row says so.
    admin = "adm-counted-key-00001"
    gateway = start_gateway(
        {
            "gateway": {"admin_key": admin},
            "audit": {"path": str(tmp_path / "audit.db"), "spill_path": str(tmp_path / "spill")},
            "services": [openai_service("openai", fake_openai.port, retries=0)],
            "rules": [
                {"name": "all", "match": {"models": ["*"]}, "targets": [{"service": "openai"}]}
            ],
            "consumers": [{"name": "team-a", "keys": [KEY]}],
        }
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "no-usage", "messages": MESSAGES, "stream": True}
    counted = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body)
    body["model"] = "fake-model"
    reported = httpx.post(gateway.url + "/v1/chat/completions", headers=headers, json=body)
    wait_finished(gateway.url, 2)

    def logs(**query: str) -> list[dict[str, Any]]:
        found = httpx.get(
            gateway.url + "/admin/logs", params=query, headers={"Authorization": f"Bearer {admin}"}
        )
        assert found.status_code == 200, found.text
        rows: list[dict[str, Any]] = found.json()["data"]
        return rows

    def both() -> list[dict[str, Any]]:
        rows = logs()
        assert len(rows) == 2
        return rows

    eventually(both)
    (row,) = logs(usage_source="counted")
    assert row["request_id"] == counted.headers["x-request-id"]
    output = math.ceil(len(streamed_text(counted)) / 4)
    assert (row["input_tokens"], row["output_tokens"]) == (PROMPT, output)
    (row,) = logs(usage_source="provider")
    assert row["request_id"] == reported.headers["x-request-id"]
    assert row["input_tokens"] and row["output_tokens"]
