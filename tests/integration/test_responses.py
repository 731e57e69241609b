"""/v1/responses: the official openai SDK's Responses API through a running gateway, in
front of a fake Anthropic API and a fake OpenAI-compatible chat server (translated)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import KEY, OTHER_KEY
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.gateway import RunningGateway
from tests.fakes.openai_server import FakeOpenAI

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    },
}
TIME: Any = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
SCHEMA: Any = {
    "type": "json_schema",
    "name": "echo",
    "schema": {
        "type": "object",
        "properties": {"echo": {"type": "string"}},
        "required": ["echo"],
        "additionalProperties": False,
    },
    "strict": True,
}
MODELS = ["claude-haiku", "compat-model"]


def responses_config(anthropic_port: int, compat_port: int, store: str) -> dict[str, Any]:
    http = {"protocol": "http", "host": "127.0.0.1", "retries": 0, "healthchecks": {}}
    return {
        "gateway": {"store": store},
        "services": [
            {
                **http,
                "name": "claude",
                "provider": "anthropic",
                "port": anthropic_port,
                "credentials": {"header_name": "x-api-key", "header_value": "sk-ant-fake"},
            },
            {**http, "name": "compat", "provider": "openai-compatible", "port": compat_port},
        ],
        "rules": [
            {
                "name": "claude",
                "match": {"models": ["claude-*"]},
                "targets": [{"service": "claude"}],
            },
            {
                "name": "compat",
                "match": {"models": ["compat-*"]},
                "targets": [{"service": "compat"}],
            },
            {
                "name": "falls-back",
                "match": {"models": ["falls-back"]},
                "targets": [{"service": "claude", "model": "claude-fail-503"}],
                "fallbacks": [{"service": "compat", "model": "compat-model"}],
            },
        ],
        "consumers": [
            {"name": "team-a", "keys": [KEY]},
            {"name": "team-b", "keys": [OTHER_KEY]},
        ],
    }


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_compat() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    fake_anthropic: FakeAnthropic, fake_compat: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    store = f"sqlite:///{tmp_path_factory.mktemp('responses') / 'sluicegate.db'}"
    config = responses_config(fake_anthropic.port, fake_compat.port, store)
    running = RunningGateway(config, keyless=False).start()
    yield running
    running.stop()


def client(gateway: RunningGateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def shape(response: Any) -> list[tuple[str, str]]:
    """What two answers must share: each output item's type and its text or call."""
    out = []
    for item in response.output:
        if item.type == "message":
            out.append(("message", "".join(c.text for c in item.content)))
        elif item.type == "function_call":
            out.append(("function_call", f"{item.name} {item.arguments}"))
        else:
            out.append((item.type, ""))
    return out


def streamed(gateway: RunningGateway, **kwargs: Any) -> tuple[Any, list[str]]:
    kinds: list[str] = []
    with client(gateway).responses.stream(**kwargs) as stream:
        for event in stream:
            kinds.append(event.type)
        return stream.get_final_response(), kinds


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize("model", MODELS)
def test_text_streamed_and_not(gateway: RunningGateway, model: str) -> None:
    whole = client(gateway).responses.create(model=model, input="hello there")
    assert whole.id.startswith("resp_") and whole.status == "completed"
    assert whole.output_text == "Hello from the fake: hello there"
    assert whole.usage is not None and whole.usage.input_tokens > 0
    final, kinds = streamed(gateway, model=model, input="hello there")
    assert final.output_text == whole.output_text
    assert shape(final) == shape(whole)
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.usage is not None and final.usage.output_tokens == whole.usage.output_tokens


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_then_its_output_by_previous_response_id(
    gateway: RunningGateway, model: str, stream: bool
) -> None:
    ask: dict[str, Any] = {"model": model, "input": "what is the weather?", "tools": [WEATHER]}
    first = streamed(gateway, **ask)[0] if stream else client(gateway).responses.create(**ask)
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "days": 1}
    follow: dict[str, Any] = {
        "model": model,
        "previous_response_id": first.id,
        "input": [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        "tools": [WEATHER],
    }
    second = (
        streamed(gateway, **follow)[0] if stream else client(gateway).responses.create(**follow)
    )
    assert second.output_text == "Tool results: sunny"
    assert second.previous_response_id == first.id


@pytest.mark.parametrize("model", MODELS)
def test_text_then_two_parallel_tool_calls(gateway: RunningGateway, model: str) -> None:
    ask: dict[str, Any] = {
        "model": model,
        "input": "explain, then the weather",
        "tools": [WEATHER, TIME],
    }
    whole = client(gateway).responses.create(**ask)
    final, kinds = streamed(gateway, **ask)
    assert [i.type for i in final.output] == ["message", "function_call", "function_call"]
    assert final.output_text == "Let me check."
    assert [i.name for i in final.output[1:]] == ["get_weather", "get_time"]
    assert shape(final) == shape(whole)
    assert kinds.count("response.output_item.added") == 3
    assert kinds.count("response.output_item.done") == 3
    assert kinds.count("response.function_call_arguments.done") == 2


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_output(gateway: RunningGateway, model: str) -> None:
    ask: dict[str, Any] = {"model": model, "input": "ping", "text": {"format": SCHEMA}}
    whole = client(gateway).responses.create(**ask)
    assert json.loads(whole.output_text) == {"echo": "ping"}
    final, _ = streamed(gateway, **ask)
    assert json.loads(final.output_text) == {"echo": "ping"}


# ---------------------------------------------------------------- kept responses
def test_retrieve_input_items_and_delete(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="claude-haiku", input="one", instructions="be kind")
    second = sdk.responses.create(model="compat-model", input="two", previous_response_id=first.id)
    got = sdk.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "Hello from the fake: two"
    items = sdk.responses.input_items.list(second.id, order="asc")
    kinds = [(i.type, getattr(i, "role", None)) for i in items.data]
    assert kinds == [("message", "user"), ("message", "assistant"), ("message", "user")]
    newest = sdk.responses.input_items.list(second.id, limit=1)
    assert newest.data[0].id == items.data[-1].id and newest.has_more
    rest = sdk.responses.input_items.list(second.id, limit=5, after=newest.data[0].id)
    assert [i.id for i in rest.data] == [i.id for i in items.data[:-1]][::-1]
    deleted = sdk.responses.delete(second.id)
    assert deleted is None  # the SDK returns nothing; the body is checked below
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    answer = httpx.delete(
        f"{gateway.url}/v1/responses/{first.id}", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert answer.json() == {"id": first.id, "object": "response", "deleted": True}


def test_earlier_instructions_are_not_carried_over(
    gateway: RunningGateway, fake_compat: FakeOpenAI
) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="compat-model", input="one", instructions="OLD RULES")
    sdk.responses.create(
        model="compat-model", input="two", previous_response_id=first.id, instructions="NEW"
    )
    sent = fake_compat.requests[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "NEW"}
    assert "OLD RULES" not in json.dumps(sent)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]


def test_store_false_keeps_nothing(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    answer = sdk.responses.create(model="claude-haiku", input="secret", store=False)
    assert answer.store is False
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(answer.id)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="claude-haiku", input="x", previous_response_id=answer.id)
    assert caught.value.code == "previous_response_not_found"


def test_another_consumers_response_is_unknown(gateway: RunningGateway) -> None:
    mine = client(gateway).responses.create(model="claude-haiku", input="mine")
    theirs = client(gateway, OTHER_KEY)
    with pytest.raises(openai.NotFoundError) as caught:
        theirs.responses.retrieve(mine.id)
    assert caught.value.body["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        theirs.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        theirs.responses.input_items.list(mine.id)
    with pytest.raises(openai.BadRequestError) as refused:
        theirs.responses.create(model="claude-haiku", input="x", previous_response_id=mine.id)
    assert refused.value.code == "previous_response_not_found"
    assert client(gateway).responses.retrieve(mine.id).id == mine.id  # still there


def test_an_unknown_previous_response_id(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).responses.create(
            model="compat-model", input="x", previous_response_id="resp_nope"
        )
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_three_turns_the_second_answered_by_a_fallback_each_sent_at_once(
    gateway: RunningGateway, fake_compat: FakeOpenAI
) -> None:
    """Each follow-up is sent the moment the stream's response.completed arrives."""
    sdk = client(gateway)
    turns = [("claude-haiku", "one"), ("falls-back", "two"), ("claude-haiku", "three")]
    previous: str | None = None
    services: list[str] = []
    for model, text in turns:
        extra = {"previous_response_id": previous} if previous else {}
        with sdk.responses.with_streaming_response.create(
            model=model, input=text, stream=True, **extra
        ) as raw:
            services.append(raw.headers["x-sluicegate-service"])
            for event in raw.parse():
                if event.type == "response.completed":
                    previous = event.response.id
                    break  # the rest of the stream is not awaited
        assert previous is not None
    assert services == ["claude", "compat", "claude"]
    items = sdk.responses.input_items.list(previous, order="asc").data
    texts = [i.content[0].text for i in items if i.type == "message"]
    assert texts == [
        "one",
        "Hello from the fake: one",
        "two",
        "Hello from the fake: two",
        "three",
    ]


# ---------------------------------------------------------------- errors
def test_a_builtin_tool_on_a_provider_that_cannot_run_it(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).responses.create(
            model="claude-haiku", input="news?", tools=[{"type": "web_search"}]
        )
    message = str(caught.value.message)
    assert "'web_search'" in message and "'claude'" in message
    assert caught.value.code == "unsupported_tool"


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_before_the_answer(gateway: RunningGateway, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        if stream:
            streamed(gateway, model="claude-fail-500", input="x")
        else:
            client(gateway).responses.create(model="claude-fail-500", input="x")
    assert caught.value.status_code == 502


def test_an_upstream_failure_after_the_stream_began(gateway: RunningGateway) -> None:
    kinds: list[str] = []
    failed: Any = None
    with client(gateway).responses.create(
        model="claude-error-stream", input="a few words here", stream=True
    ) as events:
        for event in events:
            kinds.append(event.type)
            if event.type == "response.failed":
                failed = event.response
    assert kinds[0] == "response.created" and kinds[-1] == "response.failed"
    assert "response.output_text.delta" in kinds
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.message


@pytest.mark.parametrize("model", MODELS)
def test_the_token_limit_is_incomplete(gateway: RunningGateway, model: str) -> None:
    ask: dict[str, Any] = {"model": model, "input": "a long question here", "max_output_tokens": 2}
    whole = client(gateway).responses.create(**ask)
    assert whole.status == "incomplete"
    assert whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    kinds: list[str] = []
    with client(gateway).responses.create(stream=True, **ask) as events:
        last: Any = None
        for event in events:
            kinds.append(event.type)
            last = event
    assert kinds[-1] == "response.incomplete"
    assert last.response.status == "incomplete"


# ---------------------------------------------------------------- reasoning
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_thinking_comes_back_sealed_and_goes_back_to_anthropic(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic, stream: bool
) -> None:
    ask: dict[str, Any] = {
        "model": "claude-haiku",
        "input": "what is the weather?",
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
    }
    first = streamed(gateway, **ask)[0] if stream else client(gateway).responses.create(**ask)
    reasoning, call = first.output
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Let me think about it."
    assert reasoning.encrypted_content
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    # By previous_response_id, and as Codex does it: every item handed back, nothing kept.
    client(gateway).responses.create(
        model="claude-haiku", previous_response_id=first.id, input=[output], tools=[WEATHER]
    )
    by_id = fake_anthropic.requests[-1]["body"]["messages"]
    again = [i.model_dump(exclude_none=True) for i in first.output]
    client(gateway).responses.create(
        model="claude-haiku",
        input=[{"role": "user", "content": "what is the weather?"}, *again, output],
        tools=[WEATHER],
        store=False,
    )
    handed = fake_anthropic.requests[-1]["body"]["messages"]
    signature = "sig" if stream else "sig-fake"
    for messages in (by_id, handed):
        assistant = messages[1]
        assert assistant["role"] == "assistant"
        thinking = assistant["content"][0]
        assert thinking == {
            "type": "thinking",
            "thinking": "Let me think about it.",
            "signature": signature,
        }
        assert assistant["content"][1]["type"] == "tool_use"


def test_reasoning_of_anthropic_never_reaches_another_provider(
    gateway: RunningGateway, fake_compat: FakeOpenAI
) -> None:
    first = client(gateway).responses.create(
        model="claude-haiku", input="hello", reasoning={"effort": "low"}
    )
    assert first.output[0].type == "reasoning"
    client(gateway).responses.create(
        model="compat-model", input="more", previous_response_id=first.id
    )
    sent = fake_compat.requests[-1]["body"]["messages"]
    assert all("reasoning_blocks" not in m for m in sent)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


def test_the_guides_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/responses.md's first config and its first two Python examples, run as written."""
    guide = (Path(__file__).parents[2] / "docs" / "responses.md").read_text()
    config = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", guide, re.S)[0])
    first, refused = re.findall(r"```python\n(.*?)```", guide, re.S)[:2]
    running = RunningGateway(config, keyless=False).start()
    try:
        for code in (first, refused):
            exec(code.replace("http://127.0.0.1:8080", running.url), {})
    finally:
        running.stop()
    printed = capsys.readouterr().out.splitlines()
    assert printed[:4] == ["mock: Hello", "mock: And again", "mock: Stream this", "mock: And again"]
    assert printed[-1] == "tool_choice"


def test_input_tokens_are_counted_by_anthropic(
    gateway: RunningGateway, fake_anthropic: FakeAnthropic
) -> None:
    sdk = client(gateway)
    first = sdk.responses.create(model="claude-haiku", input="a much longer question " * 20)
    counted = sdk.responses.input_tokens.count(
        model="claude-haiku", input="hi", previous_response_id=first.id, instructions="brief"
    )
    sent = fake_anthropic.requests[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"]["system"] == "brief" and len(sent["body"]["messages"]) == 3
    assert "max_tokens" not in sent["body"]
    assert counted.input_tokens > 1000  # the fake's count, not an estimate
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.input_tokens.count(
            model="claude-haiku", input="hi", previous_response_id="resp_unknown"
        )
    assert caught.value.code == "previous_response_not_found"


def test_input_tokens_are_estimated_elsewhere(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    short = sdk.responses.input_tokens.count(model="compat-model", input="hi")
    first = sdk.responses.create(model="compat-model", input="a much longer question " * 20)
    longer = sdk.responses.input_tokens.count(
        model="compat-model", input="hi", previous_response_id=first.id
    )
    assert 0 < short.input_tokens < longer.input_tokens < 1000


HOSTILE: list[Any] = [
    b"[]",
    b"{",
    {"model": "claude-haiku", "input": [1]},
    {"model": "claude-haiku", "input": [{"type": 5}]},
    {"model": "claude-haiku", "input": [{"role": "user", "content": [5]}]},
    {"model": "claude-haiku", "input": "x", "tools": "no"},
    {"model": "claude-haiku", "input": "x", "text": {"format": {"type": "json_schema"}}},
    {"model": "claude-haiku", "input": "x", "reasoning": "high"},
    {"model": "claude-haiku", "input": [{"type": "reasoning", "encrypted_content": "sg1:zz"}]},
    {"model": "claude-haiku", "input": "x", "previous_response_id": 5},
    {"model": "claude-haiku", "input": [{"type": "item_reference", "id": "msg_1"}]},
]


@pytest.mark.parametrize("body", HOSTILE)
def test_a_malformed_request_is_a_400_naming_what_is_wrong(
    gateway: RunningGateway, body: Any
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = httpx.post(
        f"{gateway.url}/v1/responses",
        content=raw,
        headers={"Authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


CALL: Any = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    (
        "output without call_id",
        {"input": [CALL, {"type": "function_call_output", "output": "sunny"}]},
        "input[1].call_id",
    ),
    (
        "call without call_id",
        {"input": [{**CALL, "call_id": None}, {**CALL, "type": "function_call_output"}]},
        "input[0].call_id",
    ),
    (
        "tool_choice naming no tool",
        {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
        "tool_choice",
    ),
    (
        "tool_choice without tools",
        {"input": "x", "tool_choice": {"type": "function", "name": "get_weather"}},
        "tool_choice",
    ),
    ("metadata not strings", {"input": "x", "metadata": {"n": 1}}, "metadata"),
    ("metadata too many", {"input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ("metadata value too long", {"input": "x", "metadata": {"k": "v" * 513}}, "metadata"),
    ("metadata key too long", {"input": "x", "metadata": {"k" * 65: "v"}}, "metadata"),
]


@pytest.mark.parametrize(
    ("body", "param"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_items_tool_choice_and_metadata_name_the_field(
    gateway: RunningGateway, fake_compat: FakeOpenAI, body: dict[str, Any], param: str
) -> None:
    sent = len(fake_compat.requests)
    answer = httpx.post(
        f"{gateway.url}/v1/responses",
        json={"model": "compat-model", **body},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert len(fake_compat.requests) == sent  # refused before any provider is asked
