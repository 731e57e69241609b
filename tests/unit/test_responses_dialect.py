"""The Responses dialect's pure translators: requests to canonical chat, answers and
chunks back to response objects and the semantic event stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from sluicegate.dialects.responses import ResponsesDialect
from sluicegate.dialects.responses_items import builtin_tools, input_items, seal, to_messages
from sluicegate.errors import InvalidRequest, UpstreamError
from sluicegate.schema.sse import EventSplitter, parse_event

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PATCH = {"type": "custom", "name": "apply_patch", "description": "Apply a patch"}


def parse(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    dialect = ResponsesDialect(history)
    return dialect.parse("chat", orjson.dumps(body)).canonical


REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "string input",
        {"model": "m", "input": "hi"},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "instructions, options",
        {
            "model": "m",
            "instructions": "be brief",
            "input": "hi",
            "max_output_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u1",
            "reasoning": {"effort": "low"},
            "metadata": {"a": "b"},
            "store": False,
            "stream": True,
        },
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "max_completion_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u1",
            "reasoning_effort": "low",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
    (
        "text and image parts",
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAA"},
                    ],
                }
            ],
        },
        {
            "model": "m",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    ],
                }
            ],
        },
    ),
    (
        "function call turn and its output",
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "weather?"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Let me look."}],
                },
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": "{}",
                },
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "x"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": "done"},
            ],
            "tools": [WEATHER, PATCH],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
        },
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "apply_patch", "arguments": '{"input":"x"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "done"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": WEATHER["parameters"],
                    },
                },
                {
                    "type": "function",
                    "function": {
                        "name": "apply_patch",
                        "description": "Apply a patch",
                        "parameters": {
                            "type": "object",
                            "properties": {"input": {"type": "string"}},
                            "required": ["input"],
                        },
                    },
                },
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        "json schema",
        {
            "model": "m",
            "input": "x",
            "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}},
        },
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}},
            },
        },
    ),
    (
        "json object",
        {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"},
        },
    ),
]


@pytest.mark.parametrize(("name", "body", "want"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_requests_become_canonical(name: str, body: dict[str, Any], want: dict[str, Any]) -> None:
    assert parse(body) == want


def test_history_comes_first_and_old_instructions_stay_behind() -> None:
    history = [
        *input_items("first question"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A"}]},
    ]
    canonical = parse({"model": "m", "instructions": "new rules", "input": "next"}, history)
    assert canonical["messages"] == [
        {"role": "system", "content": "new rules"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "next"},
    ]


CALL = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
BAD_ITEMS_CHOICES_METADATA: list[tuple[dict[str, Any], str]] = [
    ({"input": [CALL, {**OUTPUT, "call_id": None}]}, "input[1].call_id"),
    ({"input": [CALL, {k: v for k, v in OUTPUT.items() if k != "call_id"}]}, "input[1].call_id"),
    ({"input": [CALL, {**OUTPUT, "call_id": ""}]}, "input[1].call_id"),
    ({"input": [CALL, {**OUTPUT, "call_id": 7}]}, "input[1].call_id"),
    ({"input": [{**CALL, "call_id": None}]}, "input[0].call_id"),
    ({"input": [{k: v for k, v in CALL.items() if k != "call_id"}]}, "input[0].call_id"),
    ({"input": [{**CALL, "name": None}]}, "input[0].name"),
    (
        {"input": [{"type": "custom_tool_call", "name": "apply_patch", "input": "x"}]},
        "input[0].call_id",
    ),
    ({"input": [{"type": "custom_tool_call_output", "output": "ok"}]}, "input[0].call_id"),
    (
        {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
        "tool_choice",
    ),
    ({"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"input": "x", "tool_choice": {"type": "function", "name": "get_weather"}}, "tool_choice"),
    (
        {
            "input": "x",
            "tools": [WEATHER],
            "tool_choice": {"type": "custom", "name": "get_weather"},
        },
        "tool_choice",
    ),
    (
        {
            "input": "x",
            "tools": [PATCH],
            "tool_choice": {"type": "function", "name": "apply_patch"},
        },
        "tool_choice",
    ),
    ({"input": "x", "tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"input": "x", "tool_choice": 3}, "tool_choice"),
    ({"input": "x", "metadata": {"n": 1}}, "metadata"),
    ({"input": "x", "metadata": {"n": None}}, "metadata"),
    ({"input": "x", "metadata": {"n": {"deep": "x"}}}, "metadata"),
    ({"input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"input": "x", "metadata": {"k": "v" * 513}}, "metadata"),
    ({"input": "x", "metadata": {"k" * 65: "v"}}, "metadata"),
]
BAD: list[tuple[dict[str, Any], str]] = [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 3}, "input"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": "x", "tools": "none"}, "tools"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "m", "input": "x", "metadata": 5}, "metadata"),
    ({"model": "m", "input": "x", "reasoning": "high"}, "reasoning"),
    ({"model": "m", "input": "x", "user": 5}, "user"),
    *[({"model": "m", **body}, param) for body, param in BAD_ITEMS_CHOICES_METADATA],
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.param == param


GOOD_CHOICES_METADATA: list[dict[str, Any]] = [
    {
        "input": [CALL, OUTPUT],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "get_weather"},
    },
    {"input": "x", "tools": [PATCH], "tool_choice": {"type": "custom", "name": "apply_patch"}},
    {"input": "x", "tools": [WEATHER], "tool_choice": "required"},
    {"input": "x", "tool_choice": "none"},
    {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "mode": "auto"}},
    {"input": "x", "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
    {"input": "x", "metadata": {}},
    {"input": "x", "metadata": {f"{i:064}": "v" * 512 for i in range(16)}},
]


@pytest.mark.parametrize("body", GOOD_CHOICES_METADATA)
def test_declared_tool_choices_and_metadata_within_limits_pass(body: dict[str, Any]) -> None:
    assert parse({"model": "m", **body})["messages"]


def test_builtin_tools_are_named() -> None:
    body = {
        "tools": [WEATHER, {"type": "web_search"}, {"type": "code_interpreter"}, PATCH],
        "tool_choice": {"type": "file_search"},
    }
    assert builtin_tools(body) == ["web_search", "code_interpreter", "file_search"]


def test_reasoning_blocks_travel_sealed_with_the_next_assistant_turn() -> None:
    blocks = [{"type": "thinking", "thinking": "hm", "signature": "sig"}]
    items = [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": seal(blocks)},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "openai-own"},
    ]
    messages = to_messages(items)
    assert messages[0]["reasoning_blocks"] == blocks
    assert len(messages) == 1


# ---------------------------------------------------------------- answers
def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "up-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 3},
        },
    }


def answer(body: dict[str, Any], canonical: dict[str, Any]) -> dict[str, Any]:
    dialect = ResponsesDialect()
    dialect.parse("chat", orjson.dumps(body))
    out = orjson.loads(dialect.encode_response("chat", canonical))
    assert out == dialect.final
    return out


def test_text_answer() -> None:
    out = answer({"model": "m", "input": "hi"}, completion({"role": "assistant", "content": "yo"}))
    assert out["id"].startswith("resp_") and out["object"] == "response"
    assert out["status"] == "completed" and out["model"] == "up-model"
    [item] = out["output"]
    assert item["type"] == "message" and item["content"][0]["text"] == "yo"
    assert out["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }


def test_tool_calls_answer_and_custom_tools() -> None:
    message = {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin"}'},
            },
        ],
    }
    body = {"model": "m", "input": "hi", "tools": [WEATHER, PATCH]}
    out = answer(body, completion(message, "tool_calls"))
    kinds = [(i["type"], i.get("call_id")) for i in out["output"]]
    assert kinds == [("message", None), ("function_call", "c1"), ("custom_tool_call", "c2")]
    assert out["output"][2]["input"] == "*** Begin"


def test_length_is_incomplete() -> None:
    out = answer({"model": "m", "input": "hi"}, completion({"content": "cut"}, "length"))
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}


# ---------------------------------------------------------------- streams
def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "model": "up",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call(
    index: int, id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    head: dict[str, Any] = {"index": index}
    if id:
        head.update(id=id, type="function")
    function: dict[str, Any] = {"arguments": args}
    if name:
        function["name"] = name
    return chunk({"tool_calls": [{**head, "function": function}]})


USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}


def stream(
    body: dict[str, Any], chunks: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], ResponsesDialect]:
    dialect = ResponsesDialect()
    dialect.parse("chat", orjson.dumps({"model": "m", "input": "x", **body}))
    encoder = dialect.stream_encoder({}, "m")
    data = b"".join(encoder.encode([c]) for c in chunks) + encoder.close()
    events = [orjson.loads(parse_event(raw)[1]) for raw in EventSplitter().feed(data)]
    return events, dialect


def accumulate(events: list[dict[str, Any]], tools: Any = omit) -> Any:
    """What the official SDK's accumulator makes of the events (it raises on a bad order)."""
    state: Any = ResponseStreamState(input_tools=tools, text_format=omit)
    for payload in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=payload))
    return state._completed_response


STREAMS: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[str], list[str]]] = [
    (
        "text",
        {},
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            USAGE,
        ],
        ["message"],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "one tool call, arguments in one piece",
        {"tools": [WEATHER]},
        [call(0, "c1", "get_weather", '{"city":"Paris"}'), chunk({}, "tool_calls")],
        ["function_call"],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "text then two parallel tool calls, interleaved",
        {"tools": [WEATHER, PATCH]},
        [
            chunk({"content": "Let me check."}),
            call(0, "c1", "get_weather", ""),
            call(1, "c2", "apply_patch", '{"inp'),
            call(0, args='{"city":'),
            call(1, args='ut":"p"}'),
            call(0, args='"Lima"}'),
            chunk({}, "tool_calls"),
            USAGE,
        ],
        ["message", "function_call", "custom_tool_call"],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "reasoning then text",
        {},
        [chunk({"reasoning_content": "hmm"}), chunk({"content": "ok"}), chunk({}, "stop")],
        ["reasoning", "message"],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
    ),
    (
        "cut by the token limit",
        {"max_output_tokens": 1},
        [chunk({"content": "cut"}), chunk({}, "length")],
        ["message"],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.incomplete",
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "chunks", "items", "kinds"), STREAMS, ids=[s[0] for s in STREAMS]
)
def test_streams(
    name: str,
    body: dict[str, Any],
    chunks: list[dict[str, Any]],
    items: list[str],
    kinds: list[str],
) -> None:
    events, dialect = stream(body, chunks)
    assert [e["type"] for e in events] == kinds
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = sorted(e["output_index"] for e in events if e["type"] == "response.output_item.done")
    assert added == list(range(len(items))) == done
    last = events[-1]["response"]
    assert [i["type"] for i in last["output"]] == items
    assert last == dialect.final
    if last["status"] == "completed":
        final = accumulate(events)
        assert [i.type for i in final.output] == items
        assert final.id == dialect.id


def test_streamed_arguments_and_text_add_up() -> None:
    events, _ = stream({"tools": [WEATHER, PATCH]}, STREAMS[2][2])
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Let me check."
    assert final["output"][1]["arguments"] == '{"city":"Lima"}'
    assert final["output"][2]["input"] == "p"
    assert final["usage"]["total_tokens"] == 6


def test_a_failure_mid_stream_is_response_failed() -> None:
    dialect = ResponsesDialect()
    dialect.parse("chat", orjson.dumps({"model": "m", "input": "x"}))
    encoder = dialect.stream_encoder({}, "m")
    data = encoder.encode([chunk({"content": "par"})]) + encoder.error(UpstreamError("boom"))
    events = [orjson.loads(parse_event(raw)[1]) for raw in EventSplitter().feed(data)]
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"] == "boom"
    assert events[-1]["sequence_number"] == len(events) - 1
    assert dialect.final is None
