"""Where the text is in a request or an answer, in each client dialect.

A slot is ``(container, key)`` with ``container[key]`` a string: the caller reads
it, and writes the rewritten text back in place. Message text, tool arguments
and tool results are slots; ids, roles, model names and images are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Slot = tuple[Any, Any]


def _leaves(value: Any, container: Any, key: Any) -> Iterator[Slot]:
    """Every string inside a JSON value (a tool's input object)."""
    if isinstance(value, str):
        yield container, key
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, value, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, value, index)


def _openai_content(message: dict[str, Any]) -> Iterator[Slot]:
    content = message.get("content")
    if isinstance(content, str):
        yield message, "content"
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part, "text"
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            yield function, "arguments"
    function_call = message.get("function_call")
    if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
        yield function_call, "arguments"


def _anthropic_blocks(owner: Any, key: Any) -> Iterator[Slot]:
    content = owner[key]
    if isinstance(content, str):
        yield owner, key
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            yield block, "text"
        elif kind == "tool_use" and "input" in block:
            yield from _leaves(block["input"], block, "input")
        elif kind == "tool_result" and "content" in block:
            yield from _anthropic_blocks(block, "content")


def _strings(body: dict[str, Any], key: str) -> Iterator[Slot]:
    value = body.get(key)
    if isinstance(value, str):
        yield body, key
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield value, index


def request_slots(dialect: str, endpoint: str, body: dict[str, Any]) -> Iterator[Slot]:
    """The text of a request body as the client sent it."""
    if dialect == "anthropic":
        if "system" in body:
            yield from _anthropic_blocks(body, "system")
        for message in body.get("messages") or ():
            if isinstance(message, dict) and "content" in message:
                yield from _anthropic_blocks(message, "content")
        return
    if endpoint == "completions":
        yield from _strings(body, "prompt")
    elif endpoint == "embeddings":
        yield from _strings(body, "input")
    else:
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                yield from _openai_content(message)


def answer_slots(dialect: str, endpoint: str, body: dict[str, Any]) -> Iterator[Slot]:
    """The generated text of a whole answer in the client's dialect."""
    if dialect == "anthropic":
        if "content" in body:
            yield from _anthropic_blocks(body, "content")
        return
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):  # /v1/completions
            yield choice, "text"
        message = choice.get("message")
        if isinstance(message, dict):
            yield from _openai_content(message)
            if isinstance(message.get("refusal"), str):
                yield message, "refusal"
