"""Gemini's thought signatures (and the thought summaries they may sign) as canonical
``reasoning_blocks``, and back onto the model turn they came with.

Gemini 3 signs the first part of a model turn (text, a thought summary or a function
call) and, streaming, may send the signature on an empty text part at the end. A
function call's signature rides on its tool call id (``gemini_request.join_call_id``),
which every client hands back; the others become blocks of two kinds, marked as Gemini's
so that no other provider is sent them:

    {"type": "gemini_thought", "text": "<summary>", "thoughtSignature": "..."}
        a signed run of thought parts (includeThoughts): handed back as one thought part
    {"type": "gemini_signature", "thoughtSignature": "..."}
        a signature on an answer's text: handed back on the turn's text part

A run of thought text that ends without a signature is a summary only: the client sees
it (``reasoning_content``), but Gemini reads nothing from unsigned thoughts, so it is
not kept for the next turn.
"""

from __future__ import annotations

from typing import Any

THOUGHT = "gemini_thought"
SIGNATURE = "gemini_signature"
_OURS = (THOUGHT, SIGNATURE)


class Thoughts:
    """Reads one candidate's parts in order (a whole answer's, or a stream's as they come)
    and yields the blocks a signed part completes."""

    __slots__ = ("run",)

    def __init__(self) -> None:
        self.run: list[str] = []  # thought text since the last signed thought part

    def read(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        signature = part.get("thoughtSignature")
        if "functionCall" in part:
            return []  # carried by the call's id
        if part.get("thought"):
            self.run.append(str(part.get("text") or ""))
            if not signature:
                return []
            text, self.run = "".join(self.run), []
            return [{"type": THOUGHT, "text": text, "thoughtSignature": str(signature)}]
        if signature:
            return [{"type": SIGNATURE, "thoughtSignature": str(signature)}]
        return []


def own_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("reasoning_blocks")
    if not isinstance(blocks, list):
        return []
    return [b for b in blocks if isinstance(b, dict) and b.get("type") in _OURS]


def with_thoughts(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant turn whose content carries its Gemini blocks as parts: signed thoughts
    first, then the text with its signature (an empty text part if the turn had none)."""
    if message.get("role") != "assistant":
        return message
    blocks = own_blocks(message)
    if not blocks:
        return message
    content = message.get("content")
    parts: list[dict[str, Any]] = [b for b in blocks if b["type"] == THOUGHT]
    if isinstance(content, str) and content:
        parts.append({"type": "text", "text": content})
    elif isinstance(content, list):
        parts.extend(content)
    signatures = [b["thoughtSignature"] for b in blocks if b["type"] == SIGNATURE]
    if signatures:
        signed = False
        for i, part in enumerate(parts):
            if isinstance(part, dict) and part.get("type") == "text":
                parts[i] = {**part, "thoughtSignature": signatures[0]}
                signed = True
                break
        if not signed:
            parts.append({"type": "text", "text": "", "thoughtSignature": signatures[0]})
    return {**message, "content": parts}


def thought_part(part: dict[str, Any]) -> dict[str, Any]:
    """A ``gemini_thought`` block as the thought part Gemini sent."""
    out: dict[str, Any] = {"text": str(part.get("text") or ""), "thought": True}
    if part.get("thoughtSignature"):
        out["thoughtSignature"] = str(part["thoughtSignature"])
    return out
