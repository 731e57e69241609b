"""The gateway asks OpenAI-family providers for a stream's usage whatever the client asked,
and hands the usage on only to a client that asked for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import KEY, logged_row
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

ADMIN_KEY = "adm-stream-usage-key-01"
ASK: Any = [{"role": "user", "content": "how many tokens is this"}]
WATCHED = {"deny": [{"name": "w", "words": ["zebra"], "applies_to": "response", "action": "log"}]}


@pytest.fixture(scope="module")
def mistral() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI("mistral").start()
    yield server
    server.stop()


def _service(name: str, provider: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "protocol": "http",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
    }


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, mistral: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    folder: Path = tmp_path_factory.mktemp("stream-usage")
    running = RunningGateway(
        {
            "gateway": {"admin_key": ADMIN_KEY},
            "audit": {"path": str(folder / "audit.db"), "spill_path": str(folder / "spill")},
            "services": [
                _service("oai", "openai", fake_openai.port),
                _service("mistral", "mistral", mistral.port),
            ],
            "rules": [
                {
                    "name": "guarded",
                    "match": {"models": ["guarded"]},
                    "targets": [{"service": "oai"}],
                    "policies": {"guardrails": WATCHED},
                },
                {
                    "name": "guarded-mistral",
                    "match": {"models": ["guarded-mistral"]},
                    "targets": [{"service": "mistral"}],
                    "policies": {"guardrails": WATCHED},
                },
                {
                    "name": "mistral",
                    "match": {"models": ["mistral-*"]},
                    "targets": [{"service": "mistral"}],
                },
                {"name": "oai", "match": {"models": ["*"]}, "targets": [{"service": "oai"}]},
            ],
            "consumers": [{"name": "tester", "keys": [KEY]}],
        }
    ).start()
    yield running
    running.stop()


def _post(gateway: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        content=orjson.dumps(body),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer


def _events(answer: httpx.Response) -> list[dict[str, Any]]:
    return [orjson.loads(x[6:]) for x in answer.text.splitlines() if x.startswith("data: {")]


def _row(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers) as admin:
        return logged_row(admin, request_id, seconds=10)


@pytest.mark.parametrize("options", [None, {}, {"include_usage": False}])
def test_a_stream_that_did_not_ask_is_asked_for_upstream(
    gateway: RunningGateway, fake_openai: FakeOpenAI, options: dict[str, Any] | None
) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": ASK, "stream": True}
    if options is not None:
        body["stream_options"] = options
    answer = _post(gateway, body)
    assert fake_openai.last["body"]["stream_options"] == {"include_usage": True}
    events = _events(answer)
    assert events and all(not e.get("usage") for e in events)  # none reached the client
    assert all(e["choices"] for e in events)
    assert answer.text.endswith("data: [DONE]\n\n")
    whole = _post(gateway, {"model": "gpt-4o", "messages": ASK}).json()["usage"]
    row = _row(gateway, answer.headers["x-request-id"])
    assert (row["input_tokens"], row["output_tokens"]) == (
        whole["prompt_tokens"],
        whole["completion_tokens"],
    )
    assert row["usage_source"] == "provider"


def test_a_stream_that_asked_goes_as_the_client_sent_it(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    raw = orjson.dumps(
        {
            "model": "gpt-4o",
            "messages": ASK,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
        content=raw,
    )
    assert fake_openai.last["raw"] == raw  # the client's own bytes
    usage = [e for e in _events(answer) if e.get("usage")]
    assert len(usage) == 1 and usage[0]["choices"] == []


def test_a_guarded_stream_that_did_not_ask_records_the_providers_usage(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    answer = _post(gateway, {"model": "guarded", "messages": ASK, "stream": True})
    assert fake_openai.last["body"]["stream_options"] == {"include_usage": True}
    assert all(not e.get("usage") for e in _events(answer))
    whole = _post(gateway, {"model": "guarded", "messages": ASK}).json()["usage"]
    row = _row(gateway, answer.headers["x-request-id"])
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (
        whole["prompt_tokens"],
        whole["completion_tokens"],
        "provider",
    )


@pytest.mark.parametrize("asked", [False, True])
@pytest.mark.parametrize("model", ["mistral-small", "guarded-mistral"])  # relayed; translated
def test_mistral_is_never_sent_stream_options(
    gateway: RunningGateway, mistral: FakeOpenAI, asked: bool, model: str
) -> None:
    # Mistral's API refuses the field (422) and reports a stream's usage unasked, on the
    # chunk that finishes the answer: a client that did not ask gets it off that chunk.
    body: dict[str, Any] = {"model": model, "messages": ASK, "stream": True}
    if asked:
        body["stream_options"] = {"include_usage": True}
    answer = _post(gateway, body)
    assert "stream_options" not in mistral.last["body"]
    usage = [e["usage"] for e in _events(answer) if e.get("usage")]
    assert len(usage) == (1 if asked else 0)
    row = _row(gateway, answer.headers["x-request-id"])
    assert row["input_tokens"] and row["output_tokens"] and row["usage_source"] == "provider"
