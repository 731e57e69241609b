"""Cache keys: what determines an answer, hashed; never the client's key.

A key covers the gateway, the rule, the consumer (``scope: consumer`` only),
the service and model the request resolves to, and the canonical body without
the fields that do not change the answer (``stream``, ``stream_options``,
``user``, ...). The body was parsed once already; it is serialised here with
sorted keys, never parsed again. Headers a provider of the client's own dialect
sees (``anthropic-beta``) can change the answer, so they count too; the API version
(``anthropic-version``) does not: the entry is replayed in the client's own dialect.

A semantic lookup splits the same material in two: the text of the last user
turn (embedded) and everything else (the partition, which must match exactly).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.dialects.openai import content_text

# Fields that change how an answer is delivered or billed, not what it says.
IGNORED = frozenset(
    {"model", "stream", "stream_options", "user", "metadata", "store", "service_tier"}
)
# Forwarded headers that only shape the wire format, which a replay writes anew.
IGNORED_HEADERS = frozenset({"anthropic-version"})


@dataclass(frozen=True, slots=True)
class Scope:
    """Who may share entries: a gateway's rule, optionally per consumer."""

    gateway: str
    rule: str
    consumer: str | None  # set with ``scope: consumer``

    def prefix(self) -> bytes:
        return orjson.dumps([self.gateway, self.rule, self.consumer])


def _digest(scope: Scope, service: str, model: str, material: Any) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(scope.prefix())
    h.update(orjson.dumps([service, model]))
    h.update(orjson.dumps(material, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def _relevant(body: Mapping[str, Any], forwarded: Mapping[str, str]) -> dict[str, Any]:
    fields = {k: v for k, v in body.items() if k not in IGNORED}
    headers = {k: v for k, v in forwarded.items() if k not in IGNORED_HEADERS}
    if headers:
        fields["\x00headers"] = headers  # cannot collide with a JSON field name
    return fields


def exact_key(
    scope: Scope,
    service: str,
    model: str,
    body: Mapping[str, Any],
    forwarded: Mapping[str, str],
) -> str:
    return _digest(scope, service, model, _relevant(body, forwarded))


def semantic_parts(
    scope: Scope,
    service: str,
    model: str,
    body: Mapping[str, Any],
    forwarded: Mapping[str, str],
) -> tuple[str, str] | None:
    """(partition, text of the last user turn), or None when the request ends otherwise
    (a tool result, an assistant prefill) or its last turn carries more than text."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list) and any(
        not isinstance(part, dict) or part.get("type") != "text" for part in content
    ):
        return None  # an image or a file: the text alone does not say what was asked
    text = content_text(content).strip()
    if not text:
        return None
    rest = _relevant(body, forwarded)
    rest["messages"] = messages[:-1]
    rest["\x00last"] = {k: v for k, v in last.items() if k != "content"}
    return _digest(scope, service, model, rest), text
