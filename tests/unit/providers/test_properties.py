"""Property tests over every adapter in the registry.

Whatever a client sends, the path "check the OpenAI body, then translate it"
either produces a provider request or raises our 400; and whatever bytes a
provider streams, a decoder either decodes them or reports a readable error.
Nothing else may escape, because anything else would be a 500.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluicegate.config.model import Service
from sluicegate.dialects.openai import check_chat
from sluicegate.errors import GatewayError, InvalidRequest
from sluicegate.providers.base import Adapter
from sluicegate.providers.registry import ADAPTERS

SERVICE_FIELDS: dict[str, Any] = {
    "host": "provider.test",
    "project": "p",
    "location": "us-central1",
    "api_version": "2024-10-21",
}


def adapters() -> list[tuple[str, Adapter]]:
    found: dict[type[Adapter], tuple[str, Adapter]] = {}
    for name, cls in ADAPTERS.items():
        if cls is not None and cls not in found and name != "mock":
            found[cls] = (name, cls.for_service(Service(name="s", provider=name, **SERVICE_FIELDS)))
    return list(found.values())


ADAPTERS_UNDER_TEST = adapters()
IDS = [name for name, _ in ADAPTERS_UNDER_TEST]

text = st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
image_url = st.sampled_from(
    [
        "data:image/png;base64,iVBORw0KGgo=",
        "https://example.com/a.jpg",
        "",
        "not a url",
        "data:;base64,",
    ]
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": image_url})}
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["input_audio", "file", "weird"])}),
    json_values,
)
content = st.one_of(st.none(), text, st.lists(part, max_size=3), json_values)
tool_call = st.fixed_dictionaries(
    {
        "id": st.one_of(text, st.none()),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {
                "name": text,
                "arguments": st.one_of(st.just('{"a": 1}'), st.just("{}"), text, json_values),
            }
        ),
    }
)
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user"]), "content": content}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": content},
        optional={"tool_calls": st.lists(tool_call, max_size=2)},
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "content": content}, optional={"tool_call_id": text}
    ),
    st.fixed_dictionaries({"role": text, "content": content}),
    json_values,
)
tool = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.text(min_size=1, max_size=10)},
                optional={
                    "description": text,
                    "parameters": st.just({"type": "object", "properties": {}}),
                },
            ),
        }
    ),
    json_values,
)
request = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("m"), json_values),
        "messages": st.one_of(st.lists(message, max_size=5), json_values),
    },
    optional={
        "stream": st.one_of(st.booleans(), json_values),
        "max_tokens": st.one_of(st.integers(min_value=1, max_value=10_000), json_values),
        "temperature": st.one_of(st.floats(min_value=0, max_value=2), json_values),
        "stop": st.one_of(text, st.lists(text, max_size=3), json_values),
        "tools": st.one_of(st.lists(tool, max_size=3), json_values),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            st.just({"type": "function", "function": {"name": "f"}}),
            json_values,
        ),
        "response_format": st.one_of(st.just({"type": "json_object"}), json_values),
        "n": st.one_of(st.integers(min_value=1, max_value=3), json_values),
        "user": st.one_of(text, json_values),
    },
)


@pytest.mark.parametrize(("name", "adapter"), ADAPTERS_UNDER_TEST, ids=IDS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=request)
def test_any_request_translates_or_is_a_400(
    name: str, adapter: Adapter, body: dict[str, Any]
) -> None:
    try:
        model = check_chat(body)
        built = adapter.build("chat", body, b"{}", model, "https://provider.test/v1")
    except InvalidRequest:
        return
    assert isinstance(built.body, bytes)
    assert built.url.startswith("https://provider.test")


@pytest.mark.parametrize(("name", "adapter"), ADAPTERS_UNDER_TEST, ids=IDS)
@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=300)
    | st.builds(lambda e: b"data: " + e.encode() + b"\n\n", json_values.map(repr))
)
def test_any_stream_bytes_decode_or_fail_readably(name: str, adapter: Adapter, data: bytes) -> None:
    try:
        decoder = adapter.stream_decoder("chat", "m")
    except NotImplementedError:
        pytest.skip(f"{name} streams OpenAI's own format")
    try:
        for i in range(0, len(data), 7):
            decoder.feed(data[i : i + 7])
    except (GatewayError, ValueError):
        pass


@pytest.mark.parametrize(("name", "adapter"), ADAPTERS_UNDER_TEST, ids=IDS)
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200) | json_values.map(lambda v: repr(v).encode()))
def test_any_answer_decodes_or_fails_readably(name: str, adapter: Adapter, data: bytes) -> None:
    if adapter.passthrough_dialect == "openai":
        return  # passed through untouched
    # The request path turns these into a 502 naming the service.
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError, IndexError):
        adapter.decode("chat", data)
