"""JSON-RPC messages and the gateway's names for things (sans-IO)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from sluicegate.config.mcp import SEPARATOR

Message = dict[str, Any]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (JSON-RPC reserves -32000 to -32099).
SERVER_UNAVAILABLE = -32001  # an MCP server is down, slow or refused the gateway
RATE_LIMITED = -32002
BLOCKED = -32003  # a guardrail refused the arguments or the result

# The requests a client may send (2025-11-25's tasks included): on ``/mcp/{server}`` only
# these are relayed, so that a made-up method never reaches a server unchecked.
REQUESTS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    }
)
# The client's notifications the gateway relays to the session's servers: each concerns
# only the caller's own server sessions (its requests, its roots). Any other message
# without an id, a request's method included, is dropped.
RELAYED_NOTIFICATIONS = frozenset(
    {"notifications/cancelled", "notifications/progress", "notifications/roots/list_changed"}
)

# The handshake versions the gateway speaks with clients and servers, oldest first.
VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST = VERSIONS[-1]


def result(request_id: Any, value: Message) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    body: Message = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def is_response(message: Message) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def sse_event(message: Message) -> bytes:
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"


def joined(server: str, name: str) -> str:
    """A server's tool or prompt as the aggregated endpoint names it."""
    return f"{server}{SEPARATOR}{name}"


def split_name(name: str) -> tuple[str, str] | None:
    server, sep, own = name.partition(SEPARATOR)
    return (server, own) if sep and server and own else None


def relay_id(server: str, request_id: Any) -> str:
    """The id a server's request (sampling, elicitation) carries to an aggregated client:
    it names the server, so the client's answer finds its way back on any instance."""
    return joined(server, orjson.dumps(request_id).decode())


def unrelay_id(value: Any) -> tuple[str, Any] | None:
    if not isinstance(value, str):
        return None
    parts = split_name(value)
    if parts is None:
        return None
    try:
        return parts[0], orjson.loads(parts[1])
    except orjson.JSONDecodeError:
        return None


def cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"o": offset})).decode()


def offset_of(value: Any) -> int | None:
    """The offset a cursor of ``cursor()`` holds; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        found = orjson.loads(base64.urlsafe_b64decode(value.encode()))
    except (binascii.Error, ValueError):
        return None
    offset = found.get("o") if isinstance(found, dict) else None
    return offset if isinstance(offset, int) and offset >= 0 else None
