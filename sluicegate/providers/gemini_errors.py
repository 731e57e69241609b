"""Gemini's and Vertex AI's errors as the gateway's: an answer's error body (Google's
``error`` with its ``details``), and an error event in a stream."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)

_TOO_LONG = re.compile(r"exceeds the maximum number of tokens|too long", re.I)


def _fields(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {"message": body[:500].decode("utf-8", "replace").strip()}
    if isinstance(data, list) and data:  # the non-SSE stream endpoint wraps it in an array
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        d
        for d in error.get("details") or []
        if isinstance(d, dict) and str(d.get("@type", "")).endswith(kind)
    ]


def _retry_after(error: dict[str, Any]) -> str | None:
    for info in _details(error, "google.rpc.RetryInfo"):
        delay = str(info.get("retryDelay") or "")
        try:
            return str(max(1, math.ceil(float(delay.removesuffix("s")))))
        except ValueError:
            continue
    return None


def translate_error(status: int, headers: dict[str, str], body: bytes) -> GatewayError:
    error = _fields(body)
    message = str(error.get("message") or f"the provider answered {status}")
    reasons = {str(d.get("reason")) for d in _details(error, "google.rpc.ErrorInfo")}
    if "API_KEY_INVALID" in reasons:
        # The gateway's key was refused; the client can do nothing about it.
        return UpstreamError(
            "the provider refused the gateway's API key (API_KEY_INVALID)",
            code="upstream_auth_failed",
        )
    google_status = error.get("status")
    code: str | None = str(google_status).lower() if google_status else None
    if status == 400 and _TOO_LONG.search(message):
        code = "context_length_exceeded"
    elif status == 429:
        code = "rate_limit_exceeded"
    keep = {}
    retry_after = headers.get("retry-after") or (_retry_after(error) if status == 429 else None)
    if retry_after is not None:
        keep["retry-after"] = retry_after
    return UpstreamStatusError(status, message, code=code, headers=keep)


def stream_error(error: dict[str, Any]) -> GatewayError:
    message = f"Gemini: {error.get('message', 'error in stream')}"
    code = str(error.get("status") or "").lower() or None
    status = error.get("code")
    if status == 429:
        return RateLimited(message)
    if status == 400:
        if _TOO_LONG.search(message):
            return InvalidRequest(message, code="context_length_exceeded")
        return InvalidRequest(message, code=code)
    return UpstreamError(message, code=code)
