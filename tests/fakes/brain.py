"""The fake providers' shared "model": what it answers, whatever the wire format.

Each fake server reads its provider's request into a ``Turn``, asks ``answer``,
and writes the ``Answer`` back in its provider's format. So the conformance
suite can expect the same answer from every provider behind the gateway.

    last turn is tool results      -> text "Tool results: <r1>; <r2>"
    tools offered, choice not none,
      and the user says "weather"
      (or a tool is forced)        -> one call per offered tool (parallel), args {"city": ...};
                                      "explain" too: the text "Let me check." before them
    json mode                      -> '{"echo": "<user text>"}'
    otherwise                      -> "Hello from the fake: <user text>" (+ " [image: <kind>]")
    stop sequence in the text      -> cut there, finish "stop_sequence"
    more words than max_tokens     -> cut to max_tokens words, finish "length"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Turn:
    user_text: str = ""
    system: str = ""
    tool_results: list[tuple[str, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | none | required | <tool name>
    images: list[str] = field(default_factory=list)  # "base64 image/png" or "url"
    json_mode: bool = False
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    thinking: bool = False
    prompt_words: int = 0


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass
class Answer:
    text: str | None
    tool_calls: list[ToolCall]
    finish: str  # stop | length | tool_calls | stop_sequence
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    thinking: str | None = None

    def words(self) -> list[str]:
        """The text in stream pieces: words, each but the first with its leading space."""
        if not self.text:
            return []
        parts = self.text.split(" ")
        return [parts[0], *(" " + p for p in parts[1:])]


CITIES = ["Paris", "Tokyo", "Lima"]


def answer(turn: Turn, id_prefix: str = "call") -> Answer:
    cached = 3 if turn.system else 0
    prompt = max(turn.prompt_words, 1)
    thinking = "Let me think about it." if turn.thinking else None
    if turn.tool_results:
        text = "Tool results: " + "; ".join(content for _, content in turn.tool_results)
        return _finish(turn, text, prompt, cached, thinking)
    wants_tools = (
        turn.tools
        and turn.tool_choice != "none"
        and ("weather" in turn.user_text or turn.tool_choice != "auto")
    )
    if wants_tools:
        names = turn.tools if turn.tool_choice in ("auto", "required") else [turn.tool_choice]
        calls = [
            ToolCall(f"{id_prefix}_{i + 1}", name, {"city": CITIES[i % len(CITIES)], "days": i + 1})
            for i, name in enumerate(names[:2])
        ]
        completion = sum(len(c.arguments_json) // 4 + 1 for c in calls)
        text = "Let me check." if "explain" in turn.user_text else None
        return Answer(text, calls, "tool_calls", prompt, completion, cached, thinking)
    if turn.json_mode:
        text = orjson.dumps({"echo": turn.user_text}).decode()
    else:
        text = f"Hello from the fake: {turn.user_text}"
        for image in turn.images:
            text += f" [image: {image}]"
    return _finish(turn, text, prompt, cached, thinking)


def _finish(turn: Turn, text: str, prompt: int, cached: int, thinking: str | None) -> Answer:
    finish = "stop"
    for stop in turn.stop:
        at = text.find(stop)
        if at >= 0:
            text, finish = text[:at].rstrip(), "stop_sequence"
            break
    words = text.split(" ")
    if turn.max_tokens is not None and len(words) > turn.max_tokens:
        text, finish = " ".join(words[: turn.max_tokens]), "length"
    return Answer(text, [], finish, prompt, len(text.split(" ")), cached, thinking)


def split_json(text: str, pieces: int = 3) -> list[str]:
    """Tool arguments streamed in several fragments, as providers do."""
    size = max(1, len(text) // pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]
