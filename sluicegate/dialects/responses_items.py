"""Responses API items <-> canonical (OpenAI chat) messages, and the request's other fields.

Pure translation: a Responses request's ``input`` (with the stored items of the turns
before it, when it names a ``previous_response_id``) becomes a list of chat messages;
``tools``, ``tool_choice``, ``text.format`` and ``reasoning`` become their chat
equivalents. A freeform ``custom`` tool (Codex's ``apply_patch``) travels as a function
tool with one string parameter, ``input``, so that any provider can call it.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import Any

import orjson

from sluicegate.errors import InvalidRequest

# Tools a provider runs itself: only OpenAI's own Responses API (and Azure's) can.
# Every tool type but these two is such a built-in one.
CLIENT_TOOLS = frozenset({"function", "custom"})
CUSTOM_PARAMETERS = {
    "type": "object",
    "properties": {"input": {"type": "string"}},
    "required": ["input"],
}


def new_id(prefix: str) -> str:
    """An id no one can guess: a response's, which is all a follow-up or a GET needs.
    Its 24 random bytes come from the system's generator, read a block at a time."""
    global _random, _taken
    if _taken + _ID_BYTES > len(_random):
        _random, _taken = os.urandom(_BLOCK), 0
    start, _taken = _taken, _taken + _ID_BYTES
    return f"{prefix}_{_random[start:_taken].hex()}"


def item_id(prefix: str) -> str:
    """An item's id, unique but not secret (items are read only through their response's
    id): this process's random part and a count, no random bytes of its own."""
    return f"{prefix}_{_process}{next(_items):032x}"


_ID_BYTES, _BLOCK = 24, 24 * 256


def _reseed() -> None:
    # A forked worker must neither repeat its parent's ids nor share its unused bytes.
    global _random, _taken, _process, _items
    _random, _taken = b"", 0
    _process, _items = secrets.token_hex(8), itertools.count()


_random, _taken, _process, _items = b"", 0, "", itertools.count()
_reseed()
os.register_at_fork(after_in_child=_reseed)


# ---------------------------------------------------------------- input
def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items, each with an ``id`` (the list that
    ``input_items`` answers later): a string is one user message."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidRequest("input must be a string or an array of items", param="input")
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", param=f"input[{i}]")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind is None:
            raise InvalidRequest(f"input[{i}].type is missing", param=f"input[{i}].type")
        item = {**item, "type": kind}
        if kind in _CALL_ITEMS:
            _require_string(item, "call_id", f"input[{i}]")
            if kind in ("function_call", "custom_tool_call"):
                _require_string(item, "name", f"input[{i}]")
        if kind == "message":
            if isinstance(item.get("content"), str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": item["content"]}]
            item.setdefault("id", item_id("msg"))
        elif not item.get("id"):
            item["id"] = item_id(_ID_PREFIXES.get(kind, "item"))
        items.append(item)
    return items


def _require_string(item: dict[str, Any], field: str, where: str) -> None:
    # A call and its output are paired by call_id: without one, no provider can pair them.
    value = item.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(
            f"{where}.{field} must be a non-empty string", param=f"{where}.{field}"
        )


_CALL_ITEMS = frozenset(
    {"function_call", "function_call_output", "custom_tool_call", "custom_tool_call_output"}
)
_ID_PREFIXES = {
    "function_call": "fc",
    "function_call_output": "fco",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
    "reasoning": "rs",
}


def _text(parts: Any, kinds: tuple[str, ...]) -> str:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        return ""
    return "".join(
        str(p.get("text") or p.get("refusal") or "")
        for p in parts
        if isinstance(p, dict) and p.get("type") in kinds
    )


def _user_content(parts: list[Any], where: str) -> Any:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        here = f"{where}.content[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise InvalidRequest(
                    f"{here}: only images given by image_url (a URL or a data: URL) are "
                    "supported here, not file_id",
                    param=here,
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(f"{here}: content type {kind!r} is not supported", param=here)
    if all(p["type"] == "text" for p in out):
        return "\n".join(p["text"] for p in out) if len(out) != 1 else out[0]["text"]
    return out


def _call(item: dict[str, Any]) -> dict[str, Any]:
    arguments = item.get("arguments")
    if item["type"] == "custom_tool_call":
        arguments = orjson.dumps({"input": str(item.get("input", ""))}).decode()
    elif not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {
        "id": str(item.get("call_id", "")),
        "type": "function",
        "function": {"name": str(item.get("name", "")), "arguments": arguments or "{}"},
    }


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return _text(output, ("input_text", "output_text", "text"))


def to_messages(items: list[dict[str, Any]], where: str = "input") -> list[dict[str, Any]]:
    """Items -> chat messages: a function call joins the assistant turn before it; its
    output is a tool message; a reasoning item rides on the next assistant turn, or on the
    one before it when it closed that turn (a signature Gemini streamed last)."""
    messages: list[dict[str, Any]] = []
    reasoning: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        kind = item.get("type")
        if kind in _TURN_ENDS or (kind == "message" and item.get("role") != "assistant"):
            _close_turn(messages, reasoning)
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if role == "assistant":
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": _text(content, ("output_text", "refusal", "text", "input_text")),
                }
                messages.append(_with_reasoning(message, reasoning))
            elif role in ("user", "system", "developer"):
                parts = content if isinstance(content, list) else [content]
                messages.append({"role": role, "content": _user_content(parts, here)})
            else:
                raise InvalidRequest(
                    f"{here}.role must be user, assistant, system or developer",
                    param=f"{here}.role",
                )
        elif kind in ("function_call", "custom_tool_call"):
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = _with_reasoning({"role": "assistant", "content": None}, reasoning)
                messages.append(last)
            last.setdefault("tool_calls", []).append(_call(item))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id", "")),
                    "content": _output_text(item.get("output")),
                }
            )
        elif kind == "reasoning":
            reasoning.append(item)
        elif where == "previous_response" and str(kind).endswith("_call"):
            continue  # a built-in tool's call (OpenAI ran it): its answer follows as text
        elif kind == "item_reference":
            raise InvalidRequest(
                f"{here}: item_reference is not supported; send the item itself or use "
                "previous_response_id",
                param=here,
            )
        else:
            raise InvalidRequest(
                f"{here}: items of type {kind!r} are not supported by this gateway", param=here
            )
    _close_turn(messages, reasoning)
    return messages


_TURN_ENDS = frozenset({"function_call_output", "custom_tool_call_output"})


def _close_turn(messages: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
    """Reasoning left over when the assistant's turn ends belongs to that turn."""
    if not pending or not messages or messages[-1]["role"] != "assistant":
        return
    last = messages[-1]
    blocks = [b for item in pending for b in reasoning_blocks(item)]
    pending.clear()
    if blocks:
        last["reasoning_blocks"] = [*(last.get("reasoning_blocks") or ()), *blocks]


def native_history(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kept items as input for OpenAI's own Responses API, which knows none of the
    gateway's ids: messages and calls go without theirs; reasoning goes only as OpenAI
    sealed it (``encrypted_content``), never another provider's."""
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "reasoning":
            sealed = item.get("encrypted_content")
            if isinstance(sealed, str) and not sealed.startswith(SEAL):
                out.append(item)
        elif kind in ("message", "function_call", "custom_tool_call"):
            out.append({k: v for k, v in item.items() if k != "id"})
        else:
            out.append(item)
    return out


def _with_reasoning(message: dict[str, Any], pending: list[dict[str, Any]]) -> dict[str, Any]:
    """Reasoning items handed back (``encrypted_content``) go with the assistant turn they
    preceded: the provider that wrote them reads them back (``reasoning_blocks``)."""
    blocks = [b for item in pending for b in reasoning_blocks(item)]
    pending.clear()
    if blocks:
        message["reasoning_blocks"] = blocks
    return message


def reasoning_blocks(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The provider's own reasoning blocks a ``reasoning`` item carries, if any."""
    sealed = item.get("encrypted_content")
    if not isinstance(sealed, str) or not sealed.startswith(SEAL):
        return []
    try:
        blocks = orjson.loads(bytes.fromhex(sealed[len(SEAL) :]))
    except (ValueError, orjson.JSONDecodeError):
        return []
    return [b for b in blocks if isinstance(b, dict)] if isinstance(blocks, list) else []


# The gateway's encrypted_content: the provider's reasoning blocks (Anthropic's thinking and
# its signature), carried opaquely for the client to hand back. The signature inside is what
# keeps them honest: the provider refuses a block that was changed.
SEAL = "sg1:"


def seal(blocks: list[dict[str, Any]]) -> str:
    return SEAL + orjson.dumps(blocks).hex()


# ---------------------------------------------------------------- tools and options
def builtin_tools(body: dict[str, Any]) -> list[str]:
    """The built-in tools a request asks for (by type), which only OpenAI can run."""
    found: list[str] = []
    for tool in body.get("tools") or []:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind not in CLIENT_TOOLS and kind not in found:
            found.append(kind)
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        builtin = isinstance(kind, str) and kind not in (*CLIENT_TOOLS, "allowed_tools")
        if builtin and kind not in found:
            found.append(str(kind))
    return found


def refused_tools(service: str, provider: str, body: dict[str, Any]) -> InvalidRequest:
    """Why a service cannot answer a Responses request: the built-in tools it asks for."""
    names = ", ".join(f"'{name}'" for name in builtin_tools(body)) or "(none)"
    return InvalidRequest(
        f"The built-in tool {names} cannot run on service '{service}' (provider "
        f"'{provider}'): only OpenAI's and Azure's own Responses API run built-in tools.",
        param="tools",
        code="unsupported_tool",
    )


def custom_tools(body: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        str(t.get("name"))
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "custom"
    )


def chat_tools(tools: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools[{i}].name is missing", param=f"tools[{i}].name")
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("type") == "custom":
            function["parameters"] = CUSTOM_PARAMETERS
        else:
            function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
            if tool.get("strict") is not None:
                function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def check_tool_choice(choice: Any, tools: Any) -> None:
    """A ``tool_choice`` naming a function or custom tool names one the request declares,
    as OpenAI requires; a built-in tool's choice is OpenAI's to judge (``builtin_tools``)."""
    if choice is None or choice in ("auto", "none", "required"):
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(kind, str):
        raise InvalidRequest(
            "tool_choice must be auto, none, required or an object naming a tool",
            param="tool_choice",
        )
    if kind not in CLIENT_TOOLS:
        return
    name = choice.get("name")
    declared = {
        t.get("name")
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and t.get("type") == kind
    }
    if not isinstance(name, str) or name not in declared:
        raise InvalidRequest(
            f"tool_choice names the {kind} tool {name!r}, which is not among the "
            f"request's {kind} tools",
            param="tool_choice",
        )


def chat_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") in CLIENT_TOOLS and choice.get("name"):
            return {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("type") == "allowed_tools":
            return "required" if choice.get("mode") == "required" else "auto"
    raise InvalidRequest(
        "tool_choice must be auto, none, required or a function or custom tool",
        param="tool_choice",
    )


def response_format(text: Any) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format``; None for plain text."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise InvalidRequest("text must be an object", param="text")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict):
        raise InvalidRequest("text.format must be an object", param="text.format")
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("text.format.schema must be an object", param="text.format.schema")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        schema.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        "text.format.type must be text, json_object or json_schema", param="text.format.type"
    )
