"""Pieces of the canonical request that every non-OpenAI adapter reads the same way.

Each adapter writes its own wire shapes; what a tool is, what a tool call's
arguments are, what a data URL holds, and how turns of one role merge are
decided here once, with the same 400s everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.dialects.openai import content_text
from sluicegate.errors import InvalidRequest

DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,(?P<data>.*)$", re.S)
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str | None
    parameters: dict[str, Any] | None  # JSON Schema as the client sent it (None: no parameters)


def function_tools(tools: Any) -> list[FunctionTool]:
    """The client's ``tools``; only function tools exist outside OpenAI's own API."""
    if not isinstance(tools, list):
        raise InvalidRequest("tools must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequest(
                f"tools[{i}]: only function tools are supported", param=f"tools[{i}]"
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not function.get("name"):
            raise InvalidRequest(f"tools[{i}].function.name is required", param=f"tools[{i}]")
        description = function.get("description")
        parameters = function.get("parameters")
        out.append(
            FunctionTool(
                str(function["name"]),
                description if isinstance(description, str) and description else None,
                parameters if isinstance(parameters, dict) and parameters else None,
            )
        )
    return out


def tool_calls(message: dict[str, Any], where: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """(id, name, parsed arguments) of an assistant message's tool calls.

    Arguments that are JSON but not an object are wrapped as ``{"value": ...}``:
    every provider outside OpenAI wants an object there.
    """
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    out = []
    for i, call in enumerate(calls):
        here = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{here}.function.name is required", param=here)
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                f"{here}.function.arguments is not valid JSON", param=f"{here}.function.arguments"
            ) from None
        call_id = call.get("id")
        out.append(
            (
                call_id if isinstance(call_id, str) and call_id else None,
                function["name"],
                parsed if isinstance(parsed, dict) else {"value": parsed},
            )
        )
    return out


def add_turn(
    turns: list[dict[str, Any]], role: str, items: list[Any], key: str = "content"
) -> None:
    """Append a turn, merging it into the previous one of the same role: the
    providers that want user and assistant to alternate refuse two in a row."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


Items = list[Any]


def split_messages(
    messages: list[dict[str, Any]],
    *,
    content: Callable[[Any, str], Items],
    tool_calls: Callable[[dict[str, Any], str], Items],
    tool_result: Callable[[list[dict[str, Any]], int, str], Any],
    assistant: str = "assistant",
    key: str = "content",
) -> tuple[list[str], list[dict[str, Any]]]:
    """OpenAI messages -> (system texts, alternating user/assistant turns).

    System and developer messages are hoisted out (the providers take them
    apart); tool results join the user's turn; the callables write each
    provider's own items for content, tool calls and tool results.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            text = content_text(message.get("content"))
            if text.strip():
                system.append(text)
            continue
        if role in ("tool", "function"):
            add_turn(turns, "user", [tool_result(messages, i, where)], key)
        elif role == "assistant":
            items = content(message.get("content"), f"{where}.content")
            add_turn(turns, assistant, items + tool_calls(message, where), key)
        else:
            add_turn(turns, "user", content(message.get("content"), f"{where}.content"), key)
    return system, turns
