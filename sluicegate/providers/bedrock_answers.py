"""What Bedrock's Converse answers mean, whole or streamed: finish reasons, usage, ids and
errors (shared by ``bedrock`` and ``bedrock_stream``)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sluicegate.errors import (
    GatewayError,
    NoHealthyUpstream,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from sluicegate.schema.chat import Usage, usage_from_cache_split

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# Bedrock words its context-window errors in several ways, depending on the model.
_TOO_LONG = re.compile(
    r"too long|too many (input )?tokens|context (window|length)|maximum context", re.I
)


def translate_usage(usage: dict[str, Any]) -> Usage:
    return usage_from_cache_split(
        int(usage.get("inputTokens") or 0),
        int(usage.get("outputTokens") or 0),
        int(usage.get("cacheReadInputTokens") or 0),
        int(usage.get("cacheWriteInputTokens") or 0),
    )


def new_id() -> str:
    # Converse answers carry no id in the body (only a request-id header).
    return "chatcmpl-" + uuid.uuid4().hex


def error_for(kind: str, message: str, status: int, headers: dict[str, str]) -> GatewayError:
    """One of Bedrock's exceptions (by its name, any case) as the gateway's error."""
    name = kind.removesuffix("Exception").removesuffix("exception").lower()
    text = f"Bedrock {kind or status}: {message}"
    if name == "validation" and _TOO_LONG.search(message):
        return UpstreamStatusError(400, text, code="context_length_exceeded")
    if name == "throttling":
        keep = {"retry-after": headers["retry-after"]} if "retry-after" in headers else None
        return RateLimited(text, headers=keep)
    if name in ("modelnotready", "serviceunavailable"):
        return NoHealthyUpstream(text, code="upstream_unavailable")
    if name == "modeltimeout":
        return UpstreamTimeout(text)
    if name in ("modelerror", "modelstreamerror", "internalserver"):
        return UpstreamError(text, code=f"upstream_{name}")
    if status >= 500:
        return UpstreamError(text, code=f"upstream_status_{status}")
    keep = {"retry-after": headers["retry-after"]} if "retry-after" in headers else None
    return UpstreamStatusError(status, text, headers=keep)
