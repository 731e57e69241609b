"""What routing may ask of one request, each fact worked out once and only when asked.

The body is the canonical (OpenAI chat) dict the dialect already parsed; nothing here
parses again or builds a model of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluicegate.policies.tokens import approximate

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})


def _has_images(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS:
                    return True
    return False


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message (what a semantic route reads)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        prompt = body.get("prompt") or body.get("input")
        return prompt if isinstance(prompt, str) else ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
    return ""


@dataclass(slots=True)
class Facts:
    """One request as routing sees it. ``prompt_tokens`` is the limits' estimate when
    limits were reserved (the same count), else the documented approximation."""

    body: dict[str, Any]
    headers: list[tuple[bytes, bytes]]
    consumer: str
    groups: frozenset[str] = frozenset()
    budget_used: float = 0.0  # share of the consumer's tightest budget already spent
    counted_prompt: int | None = None
    default_max_tokens: int = 1024
    _named: dict[str, str] | None = field(default=None, repr=False)

    @property
    def prompt_tokens(self) -> int:
        if self.counted_prompt is None:
            self.counted_prompt = approximate(self.body)
        return self.counted_prompt

    @property
    def output_tokens(self) -> int:
        wanted = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
            return wanted
        return self.default_max_tokens

    @property
    def has_images(self) -> bool:
        return _has_images(self.body.get("messages"))

    @property
    def has_tools(self) -> bool:
        return bool(self.body.get("tools") or self.body.get("functions"))

    @property
    def response_format(self) -> str | None:
        fmt = self.body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def json_schema(self) -> bool:
        return self.response_format == "json_schema"

    @property
    def json_mode(self) -> bool:
        return self.response_format in ("json_object", "json_schema")

    def header(self, name: str) -> str | None:
        if self._named is None:
            self._named = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers}
        return self._named.get(name)

    def body_value(self, name: str) -> Any:
        return self.body.get(name)
