"""Where the text is: every string of a request, and the generated text of an answer.

A request is screened whole: every string the provider will see, in any field (known
or not) and in object keys, in either dialect, is handed to ``edit`` once, in the
order it is written, and replaced by what ``edit`` returns. Only encoded payloads are
passed over (see ``opaque``): a redaction inside them would break the file, not hide
a value.

In an answer only the generated text matters; there a slot is ``(container, key)``
with ``container[key]`` a string: the caller reads it, and writes the rewritten text
back in place. Message text, tool arguments and tool results are slots; ids, roles,
model names and images are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


def _response_output(body: dict[str, Any]) -> Iterator[Slot]:
    """A Responses API response's text: its messages' parts, its calls' arguments."""
    for item in body.get("output") or ():
        if not isinstance(item, dict):
            continue
        for part in item.get("content") or () if item.get("type") == "message" else ():
            for key in ("text", "refusal"):
                if isinstance(part, dict) and isinstance(part.get(key), str):
                    yield part, key
        for key in ("arguments", "input"):
            if item.get("type") != "message" and isinstance(item.get(key), str):
                yield item, key


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


# Strings this long are checked for being an encoded payload rather than text.
_OPAQUE_MIN = 256
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(?:;[\w.+-]+=[^;,]*)*;base64,", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]*")


def opaque(text: str) -> bool:
    """Whether ``text`` is an encoded payload: a ``data:`` URL declared base64 (an image,
    audio or a file inline), or a long run of base64 characters and nothing else."""
    if len(text) < _OPAQUE_MIN:
        return False
    return _DATA_URL.match(text) is not None or _BASE64.fullmatch(text) is not None


def _inline_file(container: Any, key: Any) -> bool:
    """Anthropic's inline files: ``{"type": "base64", "media_type": ..., "data": ...}``."""
    return key == "data" and isinstance(container, dict) and container.get("type") == "base64"


def _rename(container: dict[str, Any], renames: dict[str, str]) -> None:
    items = list(container.items())
    container.clear()
    container.update((renames.get(key, key), value) for key, value in items)


def rewrite_strings(root: Any, edit: Callable[[str], str]) -> bool:
    """Replace every string inside a JSON value by ``edit(string)``, in place, object keys
    included; whether anything changed. Depth costs no recursion (bodies nest deep)."""
    changed = False
    Frame = tuple[Any, Iterator[tuple[Any, Any]], dict[str, str]]
    stack: list[Frame] = []

    def enter(node: Any) -> None:
        if isinstance(node, dict):
            stack.append((node, iter(node.items()), {}))
        elif isinstance(node, list):
            stack.append((node, enumerate(node), {}))

    enter(root)
    while stack:
        container, items, renames = stack[-1]
        step = next(items, None)
        if step is None:
            stack.pop()
            if renames:
                _rename(container, renames)
                changed = True
            continue
        key, item = step
        if isinstance(key, str):
            new_key = edit(key)
            if new_key != key:
                renames[key] = new_key
        if isinstance(item, str):
            if _inline_file(container, key) or opaque(item):
                continue
            new = edit(item)
            if new != item:
                container[key] = new  # the same key: the dict keeps its size while iterated
                changed = True
        else:
            enter(item)
    return changed


def answer_slots(dialect: str, endpoint: str, body: dict[str, Any]) -> Iterator[Slot]:
    """The generated text of a whole answer in the client's dialect."""
    if dialect == "anthropic":
        if "content" in body:
            yield from _anthropic_blocks(body, "content")
        return
    if dialect == "responses":
        yield from _response_output(body)
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
