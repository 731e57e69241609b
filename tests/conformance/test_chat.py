"""What every provider must do behind the gateway, seen by an unmodified openai SDK."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest

Needs = Callable[[str], None]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake image").decode()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def whole_and_streamed(client: openai.OpenAI, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """The whole answer, and the stream folded into the same shape."""
    whole = client.chat.completions.create(model="m", **kwargs)
    stream = client.chat.completions.create(
        model="m", stream=True, stream_options={"include_usage": True}, **kwargs
    )
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] += call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    folded = {
        "text": "".join(text) or None,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }
    return whole, folded


def assert_same(whole: Any, folded: dict[str, Any]) -> None:
    choice = whole.choices[0]
    assert folded["text"] == (choice.message.content or None)
    assert folded["finish"] == choice.finish_reason
    whole_calls = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in choice.message.tool_calls or []
    ]
    assert [{**c, "arguments": orjson.loads(c["arguments"])} for c in folded["calls"]] == [
        {**c, "arguments": orjson.loads(c["arguments"])} for c in whole_calls
    ]
    assert folded["usage"] is not None and whole.usage is not None
    assert folded["usage"].prompt_tokens == whole.usage.prompt_tokens
    assert folded["usage"].completion_tokens == whole.usage.completion_tokens
    assert folded["usage"].total_tokens == whole.usage.total_tokens


def test_plain_text(client: openai.OpenAI) -> None:
    whole, folded = whole_and_streamed(client, messages=user("hi there"))
    assert whole.choices[0].message.content == "Hello from the fake: hi there"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == 6
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + 6
    assert_same(whole, folded)


def test_system_prompt_and_cached_usage(client: openai.OpenAI, needs: Needs) -> None:
    needs("system")
    messages = [{"role": "system", "content": "You are terse."}, *user("hello")]
    whole, folded = whole_and_streamed(client, messages=messages)
    assert whole.choices[0].message.content == "Hello from the fake: hello"
    needs("cached_usage")
    assert whole.usage.prompt_tokens_details.cached_tokens == 3
    assert folded["usage"].prompt_tokens_details.cached_tokens == 3
    assert_same(whole, folded)


def test_multi_turn(client: openai.OpenAI) -> None:
    messages = [*user("first"), {"role": "assistant", "content": "ok"}, *user("second question")]
    whole, folded = whole_and_streamed(client, messages=messages)
    assert whole.choices[0].message.content == "Hello from the fake: second question"
    assert_same(whole, folded)


@pytest.mark.parametrize(
    ("url", "seen", "capability"),
    [(PNG, "base64 image/png", "images"), ("https://example.com/cat.jpg", "url", "image_urls")],
)
def test_image_input(
    client: openai.OpenAI, needs: Needs, url: str, seen: str, capability: str
) -> None:
    needs(capability)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]
    whole, folded = whole_and_streamed(client, messages=messages)
    assert whole.choices[0].message.content == f"Hello from the fake: what is this [image: {seen}]"
    assert_same(whole, folded)


def test_single_tool_call(client: openai.OpenAI, needs: Needs) -> None:
    needs("tools")
    whole, folded = whole_and_streamed(client, messages=user("weather in Paris?"), tools=[WEATHER])
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Paris", "days": 1}
    assert call.id
    assert_same(whole, folded)


def test_parallel_tool_calls(client: openai.OpenAI, needs: Needs) -> None:
    needs("parallel_tools")
    whole, folded = whole_and_streamed(
        client, messages=user("weather and time?"), tools=[WEATHER, TIME]
    )
    calls = whole.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert len({c.id for c in calls}) == 2
    assert orjson.loads(calls[1].function.arguments) == {"city": "Tokyo", "days": 2}
    assert_same(whole, folded)


def test_forced_tool_choice(client: openai.OpenAI, needs: Needs) -> None:
    needs("tools")
    whole, folded = whole_and_streamed(
        client,
        messages=user("anything"),
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in whole.choices[0].message.tool_calls] == ["get_time"]
    assert_same(whole, folded)


def test_tool_choice_none_answers_in_text(client: openai.OpenAI, needs: Needs) -> None:
    needs("tools")
    whole = client.chat.completions.create(
        model="m", messages=user("weather?"), tools=[WEATHER], tool_choice="none"
    )
    assert whole.choices[0].message.tool_calls is None
    assert whole.choices[0].finish_reason == "stop"


def test_tool_result_round_trip(client: openai.OpenAI, needs: Needs) -> None:
    needs("tools")
    messages: list[dict[str, Any]] = [
        *user("weather and time?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
    ]
    whole, folded = whole_and_streamed(client, messages=messages, tools=[WEATHER, TIME])
    assert whole.choices[0].message.content == "Tool results: sunny; noon"
    assert_same(whole, folded)


def test_json_mode(client: openai.OpenAI, needs: Needs) -> None:
    needs("json")
    whole, folded = whole_and_streamed(
        client, messages=user("give json"), response_format={"type": "json_object"}
    )
    assert orjson.loads(whole.choices[0].message.content) == {"echo": "give json"}
    assert_same(whole, folded)


def test_stop_sequence(client: openai.OpenAI, needs: Needs) -> None:
    needs("stop")
    whole, folded = whole_and_streamed(client, messages=user("hi"), stop=["fake"])
    assert whole.choices[0].message.content == "Hello from the"
    assert whole.choices[0].finish_reason == "stop"
    assert_same(whole, folded)


def test_length_finish(client: openai.OpenAI, needs: Needs) -> None:
    needs("length")
    whole, folded = whole_and_streamed(client, messages=user("a long answer please"), max_tokens=2)
    assert whole.choices[0].message.content == "Hello from"
    assert whole.choices[0].finish_reason == "length"
    assert_same(whole, folded)


def test_reasoning_content(client: openai.OpenAI, needs: Needs) -> None:
    needs("thinking")
    whole = client.chat.completions.create(
        model="m", messages=user("think"), reasoning_effort="low"
    )
    assert whole.model_extra is not None
    message = whole.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "Let me think about it."
    assert message.content == "Hello from the fake: think"


def test_rate_limit_keeps_status_and_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="fail-429", messages=user("x"))
    assert info.value.response.headers["retry-after"] == "7"


def test_provider_400_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fail-400", messages=user("x"))
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_provider_5xx_is_502(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="fail-500", messages=user("x"))
    assert info.value.status_code == 502


def test_provider_auth_failure_is_502_without_the_secret(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="bad-credentials", messages=user("x"))
    assert info.value.status_code == 502
    assert info.value.code == "upstream_auth_failed"
    assert "wrong-key" in info.value.message
    assert "sk-wrong" not in info.value.response.text


def test_context_length_exceeded(client: openai.OpenAI, needs: Needs) -> None:
    needs("context_length_error")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="prompt-too-long", messages=user("x"))
    assert info.value.code == "context_length_exceeded"


def test_overload_is_503(client: openai.OpenAI, needs: Needs) -> None:
    needs("overload_529")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="fail-529", messages=user("x"))
    assert info.value.status_code == 503


def test_error_inside_a_stream_reaches_the_sdk(client: openai.OpenAI, needs: Needs) -> None:
    needs("overload_529")
    stream = client.chat.completions.create(
        model="error-stream", messages=user("a b c"), stream=True
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "Overloaded" in info.value.message


def test_the_answer_names_a_model(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="m", messages=user("hi"))
    assert whole.model  # providers that leave it out get the model that was asked for


def test_the_sdks_stream_helper_assembles_tool_calls(client: openai.OpenAI, needs: Needs) -> None:
    # The SDK joins every string a tool call's deltas carry: an id or a name sent again
    # (llama.cpp's server repeats both) would come out doubled.
    needs("parallel_tools")
    kwargs: Any = {"messages": user("weather and time?"), "tools": [WEATHER, TIME]}
    whole = client.chat.completions.create(model="m", **kwargs)
    with client.chat.completions.stream(model="m", **kwargs) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    expected = whole.choices[0].message.tool_calls or []
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [
        (c.function.name, orjson.loads(c.function.arguments)) for c in expected
    ]
    assert all(c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2 and all(c.id for c in calls)
    if expected[0].id.startswith("call_"):  # the fake's own ids (not made up by the gateway)
        assert [c.id for c in calls] == [c.id for c in expected]
