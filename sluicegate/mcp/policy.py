"""A server's policies on its tool calls: rate limits, and guardrails on the arguments (as
a request) and on the result (as an answer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sluicegate.guardrails.policy import Guard
from sluicegate.guardrails.scanner import Matcher, Screening, screen


def _values(value: Any, edit: Callable[[str], str]) -> Any:
    """``value`` with each string in it edited; object keys stay (they are argument names)."""
    if isinstance(value, str):
        return edit(value)
    if isinstance(value, dict):
        return {k: _values(v, edit) for k, v in value.items()}
    if isinstance(value, list):
        return [_values(v, edit) for v in value]
    return value


def _screened(matcher: Matcher, screening: Screening, value: Any, on: str) -> Any:
    if not matcher:
        return value
    return _values(value, lambda text: screen(matcher, screening, text, on))


def screen_arguments(guard: Guard, arguments: Any, screening: Screening) -> Any:
    """The arguments with PII redacted and deny rules applied; ``ContentBlocked``."""
    return _screened(guard.request, screening, arguments, "request")


def screen_result(guard: Guard, result: dict[str, Any], screening: Screening) -> dict[str, Any]:
    """A ``tools/call`` result with its texts screened: content items and structured
    content; a blocked one raises ``ContentBlocked``."""
    out = dict(result)
    content = result.get("content")
    if isinstance(content, list):
        out["content"] = [
            {**item, "text": _screened(guard.answer, screening, item["text"], "response")}
            if isinstance(item, dict) and isinstance(item.get("text"), str)
            else item
            for item in content
        ]
    if "structuredContent" in result:
        out["structuredContent"] = _screened(
            guard.answer, screening, result["structuredContent"], "response"
        )
    return out
