"""A conversation shaped as Codex CLI holds it (tests/fixtures/responses/codex_request.json),
streamed through the gateway to an Anthropic and an OpenAI-compatible upstream: raw SSE
read as Codex reads it, tool calls run, the whole input sent again each turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.test_responses import responses_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "responses" / "codex_request.json"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    anthropic, compat = FakeAnthropic().start(), FakeOpenAI().start()
    store = f"sqlite:///{tmp_path_factory.mktemp('codex') / 'sluicegate.db'}"
    running = RunningGateway(responses_config(anthropic.port, compat.port, store), keyless=False)
    running.start()
    yield running
    running.stop()
    anthropic.stop()
    compat.stop()


def codex_request(model: str) -> dict[str, Any]:
    body = json.loads(FIXTURE.read_text())
    body.pop("_comment")
    body["model"] = model
    return body


def stream(gateway: RunningGateway, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events as Codex reads them: SSE ``data:`` lines, each a JSON event."""
    out: list[dict[str, Any]] = []
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        content=orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {KEY}",
            "content-type": "application/json",
            "accept": "text/event-stream",
        },
        timeout=10,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


@pytest.mark.parametrize("model", ["claude-codex", "compat-codex"])
def test_a_codex_conversation(gateway: RunningGateway, model: str) -> None:
    body = codex_request(model)
    events = stream(gateway, body)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    final = events[-1]["response"]
    assert final["output"] == done
    calls = [i for i in done if i["type"] in ("function_call", "custom_tool_call")]
    assert [(c["type"], c["name"]) for c in calls] == [
        ("function_call", "shell"),
        ("custom_tool_call", "apply_patch"),
    ]
    assert isinstance(calls[1]["input"], str)
    [message] = [i for i in done if i["type"] == "message"]
    assert message["content"][0]["text"] == "Let me check."
    if model.startswith("claude"):  # Anthropic thought first: its thinking, sealed
        assert done[0]["type"] == "reasoning" and done[0]["encrypted_content"]
    # Codex's next turn: everything so far, the answer's items and the tools' outputs.
    outputs = [
        {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "exit 0"},
        {"type": "custom_tool_call_output", "call_id": calls[1]["call_id"], "output": "patched"},
    ]
    body["input"] = [*body["input"], *done, *outputs]
    again = stream(gateway, body)
    answer = again[-1]["response"]
    assert answer["status"] == "completed"
    [message] = [i for i in answer["output"] if i["type"] == "message"]
    assert message["content"][0]["text"] == "Tool results: exit 0; patched"
    # store: false, as Codex sends it: nothing is kept.
    kept = httpx.get(
        f"{gateway.url}/v1/responses/{answer['id']}", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert kept.status_code == 404
