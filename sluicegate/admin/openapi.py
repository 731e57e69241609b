"""``GET /admin/openapi.json``: the Admin API described from the config models.

Inputs are the models' validation schemas (``<Model>Input``); answers are their
serialization schemas, changed exactly as ``admin.entities.present`` changes an
entity: secrets left out and named in ``secrets_set``, keys counted, the
read-only fields added.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import models_json_schema

from sluicegate import __version__
from sluicegate.admin.entities import MODELS
from sluicegate.admin.gateways import GatewayDoc
from sluicegate.admin.layers import PLURAL, url_plural
from sluicegate.admin.openapi_routing import routing_paths, routing_schemas
from sluicegate.auth.keys import NewKey
from sluicegate.stores.secrets import SECRET_FIELDS
from sluicegate.telemetry.attempts import OUTCOMES

_REF = "#/components/schemas/"


def _schemas(mode: str, suffix: str) -> dict[str, Any]:
    pairs: list[Any] = [(model, mode) for model in MODELS.values()]
    _, top = models_json_schema(pairs, ref_template=_REF + "{model}" + suffix)
    return {name + suffix: schema for name, schema in top["$defs"].items()}


def _error() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                    "issues": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }


def _health() -> dict[str, Any]:
    """``GET /admin/health``: targets, and each store entity left out or never matching."""
    issue = {
        "type": "object",
        "required": ["kind", "name", "id", "source", "path", "message", "left_out"],
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["upstream", "service", "rule", "mcp_server", "group", "consumer", "key"],
            },
            "name": {"type": "string", "description": "a minted key's prefix"},
            "id": {"type": "string"},
            "source": {"type": "string", "enum": ["file", "store"]},
            "path": {"type": "string", "description": "inside the entity; empty: all of it"},
            "message": {"type": "string"},
            "left_out": {
                "type": "boolean",
                "description": "not in the running config; false: it runs but never matches",
            },
        },
    }
    return {
        "type": "object",
        "required": ["data", "next", "issues"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": _REF + "TargetHealth"}},
            "next": {"type": "null"},
            "issues": {"type": "array", "items": issue},
        },
    }


def _responses(ok: dict[str, Any], *statuses: int) -> dict[str, Any]:
    described = {
        400: "Bad request (bad JSON, bad query, a secret without a master key)",
        401: "The admin key is missing or wrong",
        404: "No such entity",
        409: "Read-only (from the file, or no store), in use, or name taken",
        412: "If-Match does not match the entity's ETag",
        422: "The change would make the config invalid",
    }
    error = {"application/json": {"schema": {"$ref": _REF + "Error"}}}
    out = dict(ok)
    out["401"] = {"description": described[401], "content": error}
    for status in statuses:
        out[str(status)] = {"description": described[status], "content": error}
    return out


def _entity(kind: str) -> dict[str, Any]:
    ref = {"$ref": _REF + MODELS[kind].__name__}
    return {
        "description": f"The {kind}",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": ref}},
    }


_TEXT_OR_NULL = {"type": ["string", "null"]}
_MCP_HEALTH = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "transport", "target", "up", "reason", "tools", "tags"],
                "properties": {
                    "name": {"type": "string"},
                    "transport": {"type": "string", "enum": ["http", "stdio"]},
                    "target": {"type": "string", "description": "its URL (no query) or command"},
                    "up": {"type": "boolean"},
                    "reason": {**_TEXT_OR_NULL, "description": "why it is down"},
                    "tools": {
                        "type": ["integer", "null"],
                        "description": "the tools it last listed; null: not listed yet",
                    },
                    "description": _TEXT_OR_NULL,
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    ref_param = {
        "name": "id_or_name",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    if_match = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
    for kind, plural in PLURAL.items():
        model = MODELS[kind].__name__
        body = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + model + "Input"}}},
        }
        listed = {
            "type": "object",
            "required": ["data", "next"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": _REF + model}},
                "next": {"type": ["string", "null"]},
            },
        }
        where = url_plural(plural)
        paths[f"/admin/{where}"] = {
            "get": {
                "summary": f"List {plural}",
                "operationId": f"list_{plural}",
                "parameters": [
                    {"name": "tags", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": _responses(
                    {
                        "200": {
                            "description": f"A page of {plural}",
                            "content": {"application/json": {"schema": listed}},
                        }
                    },
                    400,
                ),
            },
            "post": {
                "summary": f"Create a {kind}",
                "operationId": f"create_{kind}",
                "requestBody": body,
                "responses": _responses({"201": _entity(kind)}, 400, 409, 422),
            },
        }
        paths[f"/admin/{where}/{{id_or_name}}"] = {
            "parameters": [ref_param],
            "get": {
                "summary": f"Get a {kind}",
                "operationId": f"get_{kind}",
                "responses": _responses({"200": _entity(kind)}, 404),
            },
            "put": {
                "summary": f"Replace a {kind}",
                "operationId": f"replace_{kind}",
                "parameters": [if_match],
                "requestBody": body,
                "responses": _responses({"200": _entity(kind)}, 400, 404, 409, 412, 422),
            },
            "patch": {
                "summary": f"Change some fields of a {kind} (JSON merge patch)",
                "operationId": f"patch_{kind}",
                "parameters": [if_match],
                "requestBody": {
                    "required": True,
                    "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
                },
                "responses": _responses({"200": _entity(kind)}, 400, 404, 409, 412, 422),
            },
            "delete": {
                "summary": f"Delete a {kind}",
                "operationId": f"delete_{kind}",
                "parameters": [if_match],
                "responses": _responses({"204": {"description": "Deleted"}}, 404, 409, 412),
            },
        }
    paths["/admin/mcp-health"] = {
        "get": {
            "summary": "Each MCP server's health and the tools it last listed",
            "operationId": "mcp_health",
            "responses": _responses(
                {
                    "200": {
                        "description": "The MCP servers of the running config",
                        "content": {"application/json": {"schema": _MCP_HEALTH}},
                    }
                }
            ),
        }
    }
    paths["/admin/health"] = {
        "get": {
            "summary": "The state of every target: upstreams' and endpoint services'",
            "operationId": "health",
            "responses": _responses(
                {
                    "200": {
                        "description": "Targets and their health, and the config's issues",
                        "content": {"application/json": {"schema": {"$ref": _REF + "Health"}}},
                    }
                }
            ),
        }
    }
    paths.update(_audit_paths())
    return paths


_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}


def _target_health() -> dict[str, Any]:
    """A row of ``GET /admin/health`` (docs/resilience.md)."""
    return {
        "type": "object",
        "required": ["upstream", "service", "target", "state"],
        "properties": {
            "upstream": {**_NULLABLE_TEXT, "description": "the upstream of a pool's target"},
            "service": {**_NULLABLE_TEXT, "description": "the endpoint service of its target"},
            "target": {"type": "string", "description": "the target's configured URL"},
            "weight": {"type": "number"},
            "state": {"type": "string", "enum": ["healthy", "ejected", "half-open", "down"]},
            "inflight": {"type": "integer", "minimum": 0},
            "latency_ewma_ms": {"type": "number"},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "ejected_for_s": {"type": "number", "minimum": 0},
            "active_checks": {"type": "boolean"},
            "passive_checks": {"type": "boolean"},
        },
    }


def _attempts_detail() -> dict[str, Any]:
    """Every step of a request's plan, in order (docs/observability.md)."""
    return {
        "type": ["array", "null"],
        "description": "every step of the request's plan, failed ones included; null when "
        "none was taken (a cache hit, a refused request) or the row predates it",
        "items": {
            "type": "object",
            "required": ["service", "target", "status", "outcome", "ms"],
            "properties": {
                "service": {"type": "string"},
                "target": {
                    **_NULLABLE_TEXT,
                    "description": "the target's configured URL; null when nothing was sent",
                },
                "status": {**_NULLABLE_INT, "description": "the provider's HTTP status"},
                "outcome": {"type": "string", "enum": sorted(OUTCOMES)},
                "ms": {"type": "number", "description": "to the answer's last byte"},
            },
        },
    }


def _audit_log() -> dict[str, Any]:
    """A row of the audit log as ``/admin/logs`` shows it (docs/observability.md)."""
    return {
        "type": "object",
        "required": ["id", "request_id", "ts", "gateway", "status", "latency_ms", "attempts"],
        "properties": {
            "id": {"type": "string", "description": "the row's own id (GET /admin/logs/{id})"},
            "request_id": {
                "type": "string",
                "description": "the X-Request-Id (the client's when it sent one): not unique",
            },
            "ts": {"type": "string", "format": "date-time"},
            "gateway": {"type": "string"},
            **{
                name: _NULLABLE_TEXT
                for name in (
                    "consumer",
                    "key_prefix",
                    "rule",
                    "service",
                    "provider",
                    "model",
                    "cache",
                    "error_type",
                    "endpoint",
                )
            },
            "status": {"type": "integer"},
            "latency_ms": {"type": "number"},
            "ttft_ms": _NULLABLE_NUMBER,
            "input_tokens": _NULLABLE_INT,
            "output_tokens": _NULLABLE_INT,
            "cached_tokens": _NULLABLE_INT,
            # provider: the provider's own count; counted: the gateway's (none was reported)
            "usage_source": {"type": ["string", "null"], "enum": ["provider", "counted", None]},
            "cost_usd": _NULLABLE_NUMBER,
            "attempts": {"type": "integer", "description": "requests sent upstream"},
            "attempts_detail": _attempts_detail(),
            # Why the request went where it went: x-sluicegate-route (docs/routing.md).
            "route": _NULLABLE_TEXT,
            # JSON text (docs/guardrails.md): the guardrails' verdicts, the transform's tags.
            "guardrail": _NULLABLE_TEXT,
            "tags": _NULLABLE_TEXT,
            # Only in GET /admin/logs/{id}, and only for rows logged with bodies.
            "request_body": _NULLABLE_TEXT,
            "response_body": _NULLABLE_TEXT,
            "request_truncated": {"type": ["boolean", "null"]},
            "response_truncated": {"type": ["boolean", "null"]},
        },
    }


def _usage() -> dict[str, Any]:
    counts = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens")
    return {
        "type": "object",
        "required": ["group", *counts, "cost_usd"],
        "properties": {
            "group": _NULLABLE_TEXT,
            **{name: {"type": "integer", "minimum": 0} for name in counts},
            "cost_usd": {"type": "number"},
        },
    }


def _audit_responses(ok: dict[str, Any], not_found: bool = False) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF + "Error"}}}
    out = {
        "200": ok,
        "400": {"description": "A filter, limit or cursor that cannot be read", "content": error},
        "401": {"description": "The admin key is missing or wrong", "content": error},
        "409": {"description": "This gateway keeps no audit log", "content": error},
    }
    if not_found:
        out["404"] = {"description": "No row with this id", "content": error}
    return out


def _audit_paths() -> dict[str, Any]:
    text = {"type": "string"}
    moment = {
        "type": "string",
        "description": "ISO 8601 (2025-01-31T12:00:00Z) or unix seconds",
    }
    time_range = [
        {"name": "since", "in": "query", "schema": moment, "description": "inclusive"},
        {"name": "until", "in": "query", "schema": moment, "description": "exclusive"},
    ]
    names = ("gateway", "consumer", "key_prefix", "rule", "service", "provider", "model")
    equal = [{"name": name, "in": "query", "schema": text} for name in names]
    equal += [
        {"name": "status", "in": "query", "schema": {"type": "integer", "minimum": 100}},
        {"name": "cache", "in": "query", "schema": text},
        {"name": "error_type", "in": "query", "schema": text},
        {"name": "endpoint", "in": "query", "schema": text},
        {"name": "usage_source", "in": "query", "schema": {"enum": ["provider", "counted"]}},
    ]
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    }
    page = {
        "type": "object",
        "required": ["data", "next"],
        "properties": {
            "data": {"type": "array", "items": {"$ref": _REF + "AuditLog"}},
            "next": _NULLABLE_TEXT,
        },
    }
    usage = {
        "type": "object",
        "required": ["group_by", "data"],
        "properties": {
            "group_by": {"type": "string"},
            "data": {"type": "array", "items": {"$ref": _REF + "Usage"}},
        },
    }
    groups = ["consumer", "key", "model", "rule", "service", "provider", "day"]
    return {
        "/admin/logs": {
            "get": {
                "summary": "Audit rows, newest first",
                "operationId": "list_logs",
                "parameters": [
                    *time_range,
                    {"name": "request_id", "in": "query", "schema": text},
                    *equal,
                    limit,
                    {"name": "after", "in": "query", "schema": text},
                ],
                "responses": _audit_responses(
                    {
                        "description": "A page of audit rows",
                        "content": {"application/json": {"schema": page}},
                    }
                ),
            }
        },
        "/admin/logs/{id}": {
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": text,
                    "description": "the row's id (a request id is the request_id filter)",
                }
            ],
            "get": {
                "summary": "One audit row, with its bodies when they were logged",
                "operationId": "get_log",
                "responses": _audit_responses(
                    {
                        "description": "The row with this id",
                        "content": {"application/json": {"schema": {"$ref": _REF + "AuditLog"}}},
                    },
                    not_found=True,
                ),
            },
        },
        "/admin/usage": {
            "get": {
                "summary": "Requests, errors, tokens and cost summed per group",
                "operationId": "usage",
                "parameters": [
                    {
                        "name": "group_by",
                        "in": "query",
                        "schema": {"type": "string", "enum": groups, "default": "consumer"},
                    },
                    *time_range,
                    *equal,
                    {**limit, "description": "groups (default 1000)"},
                ],
                "responses": _audit_responses(
                    {
                        "description": "One entry per group: the largest cost first, "
                        "days oldest first",
                        "content": {"application/json": {"schema": usage}},
                    }
                ),
            }
        },
    }


def _key_schemas() -> dict[str, Any]:
    taken = NewKey.model_json_schema(mode="validation", ref_template=_REF + "{model}Input")
    defs = taken.pop("$defs", {})
    moment = {"type": ["string", "null"], "format": "date-time"}
    text = {"type": ["string", "null"]}
    names = {"type": ["array", "null"], "items": {"type": "string"}}
    shown = {
        "type": "object",
        "required": ["id", "prefix", "consumer", "status", "created_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "prefix": {"type": "string"},
            "name": text,
            "consumer": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "expired", "revoked"]},
            "expires_at": moment,
            "revoked_at": moment,
            "rules": names,
            "models": names,
            "mcp": {**names, "description": "MCP servers and server/tool globs it may use"},
            "limits": {"type": ["array", "null"]},
            "budget": {"type": ["object", "null"]},
            "rotated_from": text,
            "last_used_at": moment,
            "created_at": {"type": "string", "format": "date-time"},
            "key": {"type": "string", "description": "only in the answer that mints the key"},
        },
    }
    return {"Key": shown, "NewKey": taken, **{f"{k}Input": v for k, v in defs.items()}}


def _key_paths() -> dict[str, Any]:
    one = {
        "description": "The key",
        "content": {"application/json": {"schema": {"$ref": _REF + "Key"}}},
    }
    listed = {
        "description": "Keys (never the keys themselves)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data", "next"],
                    "properties": {
                        "data": {"type": "array", "items": {"$ref": _REF + "Key"}},
                        "next": {"type": ["string", "null"]},
                    },
                }
            }
        },
    }
    ref = {"name": "id_or_name", "in": "path", "required": True, "schema": {"type": "string"}}
    key = {"name": "id_or_prefix", "in": "path", "required": True, "schema": {"type": "string"}}
    json_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF + "NewKey"}}},
    }
    grace = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"grace": {"type": "string"}}}
            }
        },
    }
    return {
        "/admin/consumers/{id_or_name}/keys": {
            "parameters": [ref],
            "get": {
                "summary": "A consumer's minted keys",
                "operationId": "list_consumer_keys",
                "responses": _responses({"200": listed}, 404),
            },
            "post": {
                "summary": "Mint a key (its only showing)",
                "operationId": "mint_key",
                "requestBody": json_body,
                "responses": _responses({"201": one}, 400, 404, 409, 422),
            },
        },
        "/admin/keys": {
            "get": {
                "summary": "Every minted key of the gateway",
                "operationId": "list_keys",
                "parameters": [{"name": "consumer", "in": "query", "schema": {"type": "string"}}],
                "responses": _responses({"200": listed}, 404),
            }
        },
        "/admin/keys/{id_or_prefix}": {
            "parameters": [key],
            "get": {
                "summary": "One key",
                "operationId": "get_key",
                "responses": _responses({"200": one}, 404),
            },
            "delete": {
                "summary": "Revoke a key",
                "operationId": "revoke_key",
                "responses": _responses({"204": {"description": "Revoked"}}, 404, 409, 412),
            },
        },
        "/admin/keys/{id_or_prefix}/rotate": {
            "parameters": [key],
            "post": {
                "summary": "Mint a successor; the old key ends after the grace period",
                "operationId": "rotate_key",
                "requestBody": grace,
                "responses": _responses({"201": one}, 400, 404, 409, 412, 422),
            },
        },
    }


def _gateway_schemas() -> dict[str, Any]:
    taken = GatewayDoc.model_json_schema(mode="validation", ref_template=_REF + "{model}Input")
    defs = taken.pop("$defs", {})
    shown = copy.deepcopy(GatewayDoc.model_json_schema(mode="serialization"))
    shown.pop("$defs", None)
    timestamp = {"type": ["string", "null"], "format": "date-time", "readOnly": True}
    shown["properties"].update(
        {
            # "none", {"jwt": {...}} without a shared secret ("secret_set"), or null: keys only
            "auth": {"anyOf": [{"const": "none"}, {"type": "object"}, {"type": "null"}]},
            "id": {"type": "string", "format": "uuid", "readOnly": True},
            "default": {"type": "boolean", "readOnly": True},
            "source": {"type": "string", "enum": ["file", "store"], "readOnly": True},
            "created_at": timestamp,
            "updated_at": timestamp,
        }
    )
    shown["required"] = ["id", "name", "hosts", "tags", "default", "source"]
    return {"Gateway": shown, "GatewayInput": taken, **{f"{k}Input": v for k, v in defs.items()}}


def _with_gateways(paths: dict[str, Any]) -> dict[str, Any]:
    """The paths of the default gateway, again under ``/admin/gateways/{gateway}``, and the
    gateways themselves."""
    out = dict(paths)
    gateway = {"name": "gateway", "in": "path", "required": True, "schema": {"type": "string"}}
    not_found = {
        "description": "No such gateway or entity",
        "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}},
    }
    for path, item in paths.items():
        if path.startswith(("/admin/docs", "/admin/openapi", "/admin/gateways")):
            continue
        scoped = copy.deepcopy(item)
        scoped["parameters"] = [gateway, *scoped.get("parameters", [])]
        for method, operation in scoped.items():
            if method == "parameters":
                continue
            operation["operationId"] = "gateway_" + operation["operationId"]
            operation["responses"].setdefault("404", not_found)
        out["/admin/gateways/{gateway}" + path.removeprefix("/admin")] = scoped
    shown = {"$ref": _REF + "Gateway"}
    one = {
        "description": "The gateway",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": shown}},
    }
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF + "GatewayInput"}}},
    }
    listed = {
        "type": "object",
        "required": ["data", "next"],
        "properties": {
            "data": {"type": "array", "items": shown},
            "next": {"type": ["string", "null"]},
        },
    }
    page = [
        {"name": "tags", "in": "query", "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ]
    if_match = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
    out["/admin/gateways"] = {
        "get": {
            "summary": "List gateways (tenants)",
            "operationId": "list_gateways",
            "parameters": page,
            "responses": _responses(
                {
                    "200": {
                        "description": "A page of gateways",
                        "content": {"application/json": {"schema": listed}},
                    }
                },
                400,
            ),
        },
        "post": {
            "summary": "Create a gateway",
            "operationId": "create_gateway",
            "requestBody": body,
            "responses": _responses({"201": one}, 400, 409, 422),
        },
    }
    out["/admin/gateways/{gateway}"] = {
        "parameters": [gateway],
        "get": {
            "summary": "Get a gateway",
            "operationId": "get_gateway",
            "responses": _responses({"200": one}, 404),
        },
        "put": {
            "summary": "Replace a gateway's hosts, description and tags",
            "operationId": "replace_gateway",
            "parameters": [if_match],
            "requestBody": body,
            "responses": _responses({"200": one}, 400, 404, 409, 412, 422),
        },
        "patch": {
            "summary": "Change some fields of a gateway",
            "operationId": "patch_gateway",
            "parameters": [if_match],
            "requestBody": {
                "required": True,
                "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
            },
            "responses": _responses({"200": one}, 400, 404, 409, 412, 422),
        },
        "delete": {
            "summary": "Delete a gateway that holds no entities",
            "operationId": "delete_gateway",
            "parameters": [if_match],
            "responses": _responses({"204": {"description": "Deleted"}}, 404, 409, 412),
        },
    }
    return out


# What any operation may answer besides its own statuses (docs/admin-api.md#errors);
# 408 and 413 only where it takes a body.
_EVERYWHERE = {
    "429": "Too many failed admin logins from this address (see Retry-After)",
    "503": "The store is not answering; nothing was written (see Retry-After)",
}
_WITH_BODY = {
    "408": "The body paused longer than gateway.body_timeout",
    "413": "The body is over gateway.max_body_bytes",
}


def _with_control_errors(paths: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF + "Error"}}}
    for item in paths.values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            extra = {**_EVERYWHERE, **(_WITH_BODY if "requestBody" in operation else {})}
            for status, description in extra.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": error}
                )
    return paths


def openapi_spec() -> dict[str, Any]:
    schemas = {**_schemas("validation", "Input"), **_schemas("serialization", "")}
    creds = schemas["Credentials"]
    for field in SECRET_FIELDS:
        creds["properties"].pop(field, None)
    creds["properties"]["secrets_set"] = {
        "type": "array",
        "items": {"type": "string", "enum": sorted(SECRET_FIELDS)},
        "description": "the secret fields that hold a value (never shown)",
    }
    timestamp = {"type": ["string", "null"], "format": "date-time", "readOnly": True}
    for kind, model in MODELS.items():
        schema = schemas[model.__name__]
        props = schema["properties"]
        if kind == "consumer":
            props.pop("keys", None)
            props["key_count"] = {"type": "integer", "minimum": 0, "readOnly": True}
        if kind == "rule":
            props["position"] = {
                "type": ["integer", "null"],
                "minimum": 1,
                "readOnly": True,
                "description": "where requests try this rule (1: first), after priority and "
                "ties; null: not running (see /admin/health's issues)",
            }
        props["id"] = {"type": "string", "format": "uuid", "readOnly": True}
        props["source"] = {"type": "string", "enum": ["file", "store"], "readOnly": True}
        props["created_at"] = timestamp
        props["updated_at"] = timestamp
        schema["required"] = sorted({*schema.get("required", []), "id", "name", "source"})
    schemas["Error"] = _error()
    schemas["Health"] = _health()
    schemas.update(_gateway_schemas())
    schemas.update(_key_schemas())
    schemas["AuditLog"] = _audit_log()
    schemas["TargetHealth"] = _target_health()
    schemas["Usage"] = _usage()
    schemas.update(routing_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": "sluicegate Admin API", "version": __version__},
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _with_control_errors(
            _with_gateways({**_paths(), **_key_paths(), **routing_paths()})
        ),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
