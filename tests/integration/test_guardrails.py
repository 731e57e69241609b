"""Guardrails and transforms on the request path: what the fake upstream receives and what
the client (the official SDKs, or plain HTTP) gets back (docs/guardrails.md)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import KEY, openai_service
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def _rule(name: str, models: list[str], service: str, policies: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"models": models},
        "targets": [{"service": service}],
        "fallback_on": [],
        "policies": policies,
    }


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    audit = tmp_path_factory.mktemp("audit")
    redact = {"guardrails": {"pii": "redact", "restore": True}}
    config = {
        "audit": {
            "path": str(audit / "audit.db"),
            "spill_path": str(audit / "spill.jsonl"),
            "log_bodies": True,
            "flush_interval": "50ms",
        },
        "services": [
            openai_service("oai", fake_openai.port, retries=0),
            {
                "name": "claude",
                "provider": "anthropic",
                "protocol": "http",
                "host": "127.0.0.1",
                "port": fake_anthropic.port,
                "retries": 0,
                "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
            },
        ],
        "rules": [
            _rule("redact", ["fake-redact", "fake-redact-stream"], "oai", redact),
            _rule("redact-claude", ["claude-redact"], "claude", redact),
            _rule(
                "no-restore",
                ["fake-norestore"],
                "oai",
                {"guardrails": {"pii": {"email": "redact", "credit_card": "block"}}},
            ),
            _rule(
                "blocking",
                ["fake-block", "claude-block"],
                "oai",
                {
                    "guardrails": {
                        "pii": {"secret": "block", "default": "log"},
                        "deny": [
                            {"name": "codename", "words": ["Bluebird"], "applies_to": "request"},
                            {"name": "fake-talk", "words": ["fake"], "applies_to": "response"},
                        ],
                    }
                },
            ),
            _rule(
                "schema",
                ["fake-schema*"],
                "oai",
                {
                    "guardrails": {
                        "params": {
                            "models": ["fake-schema", "fake-schema-ok"],
                            "max_tokens": 100,
                            "temperature": {"min": 0, "max": 1},
                            "forbidden": ["logit_bias"],
                        },
                        "max_prompt_tokens": 50,
                    }
                },
            ),
            _rule(
                "transformed",
                ["fake-transform", "short"],
                "oai",
                {
                    "transform": {
                        "params": {"temperature": 0.2},
                        "defaults": {"max_tokens": 64},
                        "remove": ["user"],
                        "models": {"short": "fake-aliased"},
                        "system_prefix": "Be brief.",
                        "request_headers": {
                            "add": {"x-team": "a"},
                            "rename": {"x-client-trace": "x-upstream-trace"},
                        },
                        "response_headers": {
                            "add": {"x-policy": "transformed"},
                            "remove": ["x-sluicegate-attempts"],
                        },
                        "tags": {"project": "x-project"},
                    }
                },
            ),
            _rule("plain", ["fake-plain"], "oai", {}),
            _rule("cached", ["fake-cached"], "oai", {**redact, "cache": {"mode": "exact"}}),
            _rule(
                "cached-redacted",
                ["fake-cached-norestore"],
                "oai",
                {"guardrails": {"pii": "redact"}, "cache": {"mode": "exact"}},
            ),
            _rule("claude-plain", ["claude-plain"], "claude", {}),
            _rule(
                "claude-out",
                ["claude-out"],
                "claude",
                {
                    "guardrails": {
                        "deny": [{"name": "greeting", "words": ["Hello"], "applies_to": "response"}]
                    }
                },
            ),
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
    }
    running = RunningGateway(config).start()
    yield running
    running.stop()


def _client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEY, max_retries=0)


def _chat(gateway: RunningGateway, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers={**AUTH, **headers}, timeout=10
    )


def _sse(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_redacted_before_it_leaves_and_restored_for_the_client(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    text = f"write to {EMAIL} about card {CARD}"
    answer = _client(gateway).chat.completions.create(
        model="fake-redact", messages=[{"role": "user", "content": text}]
    )
    sent = fake_openai.last["raw"].decode()
    assert EMAIL not in sent and "4111" not in sent
    assert "[EMAIL_1]" in sent and "[CREDIT_CARD_1]" in sent
    assert answer.choices[0].message.content == f"Hello from the fake: {text}"


def test_restore_in_a_stream(gateway: RunningGateway, fake_openai: FakeOpenAI) -> None:
    text = f"mail {EMAIL} and {EMAIL} now"
    stream = _client(gateway).chat.completions.create(
        model="fake-redact-stream", messages=[{"role": "user", "content": text}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert EMAIL not in fake_openai.last["raw"].decode()
    assert fake_openai.last["body"]["messages"][0]["content"] == "mail [EMAIL_1] and [EMAIL_1] now"
    assert "".join(pieces) == f"Hello from the fake: {text}"


def test_the_cache_keys_on_the_redacted_request_and_never_shares_restored_values(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    first = _chat(
        gateway,
        {"model": "fake-cached", "messages": [{"role": "user", "content": "hi a@one.example"}]},
    )
    second = _chat(
        gateway,
        {"model": "fake-cached", "messages": [{"role": "user", "content": "hi b@two.example"}]},
    )
    assert "a@one.example" in first.text and "b@two.example" in second.text
    assert "a@one.example" not in second.text
    assert second.headers["x-sluicegate-cache"] == "bypass"
    # Without restore the answer holds placeholders only: two people, one cache entry.
    before = len(fake_openai.requests)
    one, two = (
        _chat(
            gateway,
            {
                "model": "fake-cached-norestore",
                "messages": [{"role": "user", "content": f"hi {who}"}],
            },
        )
        for who in ("c@three.example", "d@four.example")
    )
    assert one.headers["x-sluicegate-cache"] == "miss"
    assert two.headers["x-sluicegate-cache"] == "hit"
    assert len(fake_openai.requests) == before + 1
    assert two.json()["choices"][0]["message"]["content"] == "Hello from the fake: hi [EMAIL_1]"


def test_without_restore_the_client_sees_the_placeholder(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    answer = _client(gateway).chat.completions.create(
        model="fake-norestore", messages=[{"role": "user", "content": f"hi {EMAIL}"}]
    )
    assert answer.choices[0].message.content == "Hello from the fake: hi [EMAIL_1]"
    assert EMAIL not in fake_openai.last["raw"].decode()


def test_tool_arguments_and_results_are_redacted(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    messages: Any = [
        {"role": "user", "content": "look it up"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": f'{{"email": "{EMAIL}"}}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"owner: {EMAIL}, ip 10.1.2.3"},
    ]
    _client(gateway).chat.completions.create(model="fake-norestore", messages=messages)
    sent = fake_openai.last["body"]["messages"]
    assert orjson.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"email": "[EMAIL_1]"}
    assert sent[2]["content"] == "owner: [EMAIL_1], ip 10.1.2.3"  # only email is on here


def test_anthropic_dialect_redacts_and_restores(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    text = f"reach me at {EMAIL}"
    message = client.messages.create(
        model="claude-redact",
        max_tokens=100,
        system=f"The user is {EMAIL}.",
        messages=[{"role": "user", "content": text}],
    )
    sent = fake_anthropic.last["raw"].decode()
    assert EMAIL not in sent
    assert fake_anthropic.last["body"]["system"] == "The user is [EMAIL_1]."
    block = message.content[0]
    assert block.type == "text" and block.text.endswith(text)


def test_a_blocked_request_is_a_400_and_never_sent(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    before = len(fake_openai.requests)
    for content, param in [
        ("our key is sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123", None),
        ("tell me about project bluebird", None),
    ]:
        response = _chat(
            gateway, {"model": "fake-block", "messages": [{"role": "user", "content": content}]}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "content_blocked" and error["param"] == param
        assert "sk-proj" not in response.text and "bluebird" not in error["message"].lower()
    assert len(fake_openai.requests) == before


def test_a_blocked_stream_ends_with_an_error_event_and_no_blocked_text(
    gateway: RunningGateway,
) -> None:
    body = {
        "model": "fake-block",
        "stream": True,
        "messages": [{"role": "user", "content": "say something"}],
    }
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=10
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
    events = _sse(text)
    relayed = "".join(
        (c["choices"][0]["delta"].get("content") or "") for c in events if c.get("choices")
    )
    assert "fake" not in relayed.lower()
    assert "Hello from the fake".startswith(relayed)  # at most what came before the match
    assert events[-1]["error"]["code"] == "content_blocked"
    assert "[DONE]" not in text


def test_a_blocked_whole_answer_is_replaced_by_the_refusal(gateway: RunningGateway) -> None:
    answer = _client(gateway).chat.completions.create(
        model="fake-block", messages=[{"role": "user", "content": "hi"}]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "The answer was withheld by the gateway's content policy."


def test_a_blocked_anthropic_stream_ends_with_an_error_event(gateway: RunningGateway) -> None:
    body = {
        "model": "claude-out",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream(
        "POST",
        gateway.url + "/v1/messages",
        json=body,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        timeout=10,
    ) as response:
        text = response.read().decode()
    assert "Hello" not in text
    assert "event: error" in text and "content_blocked" not in text.split("event: error")[0]
    assert text.rstrip().endswith("}")


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": "fake-schema-other"}, "model"),
        ({"max_tokens": 500}, "max_tokens"),
        ({"max_completion_tokens": 101}, "max_completion_tokens"),
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"messages": [{"role": "user", "content": "word " * 400}]}, "messages"),
    ],
)
def test_parameter_schema_violations_name_the_parameter(
    gateway: RunningGateway, change: dict[str, Any], param: str
) -> None:
    body = {"model": "fake-schema", "messages": [{"role": "user", "content": "hi"}], **change}
    response = _chat(gateway, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert param in error["message"] or param == "messages"


def test_a_request_inside_the_schema_passes(gateway: RunningGateway) -> None:
    body = {
        "model": "fake-schema-ok",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "temperature": 1,
    }
    assert _chat(gateway, body).status_code == 200


def test_transforms_reach_the_upstream_and_the_client(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    body = {
        "model": "short",
        "temperature": 0.9,
        "user": "u-1",
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = _chat(gateway, body, **{"x-client-trace": "t-42", "x-project": "apollo"})
    assert response.status_code == 200
    seen = fake_openai.last
    assert seen["body"]["model"] == "fake-aliased"
    assert seen["body"]["temperature"] == 0.2 and seen["body"]["max_tokens"] == 64
    assert "user" not in seen["body"]
    assert seen["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen["headers"]["x-team"] == "a" and seen["headers"]["x-upstream-trace"] == "t-42"
    assert "x-client-trace" not in seen["headers"]
    assert response.headers["x-policy"] == "transformed"
    assert "x-sluicegate-attempts" not in response.headers
    assert response.headers["x-sluicegate-service"] == "oai"


def test_passthrough_keeps_the_clients_bytes_when_nothing_is_rewritten(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    raw = b'{"model":"fake-block",  "messages":[{"role":"user","content":"plain words"}]}'
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=raw,
        headers={**AUTH, "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert fake_openai.last["raw"] == raw  # a log-only guardrail rewrites nothing


def test_verdicts_and_tags_in_the_audit_log_and_metrics_without_values(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    rid = "guardrail-audit-1"
    response = _chat(
        gateway,
        {"model": "fake-redact", "messages": [{"role": "user", "content": f"hi {EMAIL}"}]},
        **{"x-request-id": rid},
    )
    assert response.status_code == 200
    tagged = _chat(
        gateway,
        {"model": "fake-transform", "messages": [{"role": "user", "content": "x"}]},
        **{"x-request-id": rid + "-t", "x-project": "apollo"},
    )
    assert tagged.status_code == 200
    row = _audit_row(gateway, rid)
    verdicts = orjson.loads(row["guardrail"])
    assert {"on": "request", "type": "email", "action": "redact", "count": 1} in verdicts
    assert {"on": "response", "type": "restore", "action": "restore", "count": 1} in verdicts
    assert EMAIL not in row["request_body"] and "[EMAIL_1]" in row["request_body"]
    assert EMAIL not in row["response_body"]
    assert EMAIL not in orjson.dumps(row).decode()
    assert orjson.loads(_audit_row(gateway, rid + "-t")["tags"]) == {"project": "apollo"}
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    line = next(
        m
        for m in metrics.splitlines()
        if m.startswith("sluicegate_guardrail_verdicts_total")
        and 'type="email"' in m
        and 'action="redact"' in m
        and 'rule="redact"' in m
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert EMAIL not in metrics


def _audit_row(gateway: RunningGateway, rid: str) -> dict[str, Any]:
    """The row as the store holds it, read from the audit file (written in batches)."""
    audit = gateway.runtime.loaded.config.audit
    assert audit.path is not None
    deadline = time.monotonic() + 10
    while True:
        with contextlib.closing(sqlite3.connect(audit.path)) as conn:
            conn.row_factory = sqlite3.Row
            found = conn.execute(
                "SELECT * FROM sluicegate_audit WHERE request_id = ?", (rid,)
            ).fetchone()
        if found is not None:
            return dict(found)
        assert time.monotonic() < deadline, "no audit row"
        time.sleep(0.05)


def test_counting_tokens_sends_the_redacted_text(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    body = {"model": "claude-redact", "messages": [{"role": "user", "content": f"hi {EMAIL}"}]}
    response = httpx.post(
        gateway.url + "/v1/messages/count_tokens",
        json=body,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert fake_anthropic.last["path"].endswith("/count_tokens")
    assert fake_anthropic.last["body"]["messages"][0]["content"] == "hi [EMAIL_1]"


def test_anthropic_stream_from_an_anthropic_provider_is_restored(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    text = f"write to {EMAIL} soon"
    with client.messages.stream(
        model="claude-redact", max_tokens=100, messages=[{"role": "user", "content": text}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert EMAIL not in fake_anthropic.last["raw"].decode()
    assert streamed.endswith(text) and final.stop_reason == "end_turn"
