"""The Responses API in front of every provider (OpenAI's and Azure's own, passed through;
the others translated), seen by an unmodified openai SDK: text, tools, a follow-up by
previous_response_id, JSON, the token limit; streamed and not, alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

Needs = Callable[[str], None]

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
TIME: Any = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {}},
}


def both(client: openai.OpenAI, **kwargs: Any) -> tuple[Any, Any]:
    whole = client.responses.create(model="m", **kwargs)
    with client.responses.stream(model="m", **kwargs) as events:
        return whole, events.get_final_response()


def items(response: Any) -> list[tuple[str, str]]:
    out = []
    for item in response.output:
        if item.type == "message":
            out.append(("message", item.content[0].text))
        elif item.type == "function_call":
            out.append(("function_call", f"{item.name} {json.loads(item.arguments)}"))
    return out


def test_text(client: openai.OpenAI, needs: Needs) -> None:
    needs("text")
    whole, streamed = both(client, input="hello there", instructions="be brief")
    assert whole.output_text == streamed.output_text
    assert whole.output_text.endswith("hello there")
    assert whole.usage is not None and whole.usage.input_tokens > 0
    assert streamed.usage is not None and streamed.usage.output_tokens == whole.usage.output_tokens


def test_a_tool_call_then_its_output(client: openai.OpenAI, needs: Needs) -> None:
    needs("tools")
    whole, streamed = both(client, input="what is the weather?", tools=[WEATHER])
    assert items(whole) == items(streamed)
    [call] = [i for i in whole.output if i.type == "function_call"]
    assert call.name == "get_weather"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    again = client.responses.create(
        model="m", previous_response_id=whole.id, input=[output], tools=[WEATHER]
    )
    assert again.output_text == "Tool results: sunny"


def test_text_then_parallel_tool_calls(client: openai.OpenAI, needs: Needs) -> None:
    needs("parallel_tools")
    whole, streamed = both(client, input="explain, then the weather", tools=[WEATHER, TIME])
    assert items(whole) == items(streamed)
    assert [kind for kind, _ in items(streamed)] == ["message", "function_call", "function_call"]


def test_json_schema(client: openai.OpenAI, needs: Needs) -> None:
    needs("json")
    schema = {
        "type": "json_schema",
        "name": "echo",
        "schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
    }
    whole, streamed = both(client, input="ping", text={"format": schema})
    assert json.loads(whole.output_text) == json.loads(streamed.output_text) == {"echo": "ping"}


def test_the_token_limit(client: openai.OpenAI, needs: Needs) -> None:
    needs("length")
    answer = client.responses.create(
        model="m", input="one two three four five", max_output_tokens=2
    )
    assert answer.status == "incomplete"
    assert answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"


PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake image").decode()


@pytest.mark.parametrize(
    ("url", "seen", "capability"),
    [(PNG, "base64 image/png", "images"), ("https://example.com/cat.jpg", "url", "image_urls")],
)
def test_image_input(
    client: openai.OpenAI, needs: Needs, url: str, seen: str, capability: str
) -> None:
    needs(capability)
    content = [
        {"type": "input_text", "text": "what is this"},
        {"type": "input_image", "image_url": url},
    ]
    whole, streamed = both(client, input=[{"role": "user", "content": content}])
    assert whole.output_text == f"Hello from the fake: what is this [image: {seen}]"
    assert streamed.output_text == whole.output_text
