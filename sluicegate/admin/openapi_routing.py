"""The OpenAPI description of smart routing's Admin API: ``/admin/models`` (the model
catalog) and ``/admin/route/explain``."""

from __future__ import annotations

from typing import Any

from sluicegate.config.routing import CAPABILITIES, ModelSpec

_REF = "#/components/schemas/"
_ERROR = {"application/json": {"schema": {"$ref": _REF + "Error"}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR}


def routing_schemas() -> dict[str, Any]:
    number = {"type": ["number", "null"], "minimum": 0}
    count = {"type": ["integer", "null"], "minimum": 1}
    model = {
        "type": "object",
        "required": ["name", "source"],
        "properties": {
            "name": {"type": "string"},
            "context_window": count,
            "max_output": count,
            **{p: number for p in ("input", "output", "cached_input", "cache_write")},
            "reasoning": number,
            "audio_input": number,
            "capabilities": {
                "type": ["array", "null"],
                "items": {"type": "string", "enum": list(CAPABILITIES)},
                "description": "null: unknown (never a reason to skip the model)",
            },
            "description": {"type": ["string", "null"]},
            "source": {"type": "string", "enum": ["builtin", "file", "store"]},
        },
    }
    spec = ModelSpec.model_json_schema(mode="validation")
    explained = {
        "type": "object",
        "required": ["rule", "route", "plan"],
        "properties": {
            "rule": {"type": "string"},
            "route": {"type": "string", "description": "what x-sluicegate-route would say"},
            "plan": {"type": "array", "items": {"type": "string"}},
        },
    }
    asked = {
        "type": "object",
        "required": ["body"],
        "properties": {
            "body": {"type": "object", "description": "the request, as a client would send it"},
            "model": {"type": ["string", "null"]},
            "consumer": {"type": ["string", "null"]},
            "headers": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
            "dialect": {"type": ["string", "null"], "enum": ["openai", "anthropic", None]},
            "budget_used": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        },
    }
    nullable = {"type": ["number", "null"]}
    target = {
        "type": "object",
        "required": ["service", "model", "sets", "healthy", "inflight", "share"],
        "properties": {
            "service": {"type": "string"},
            "model": {"type": ["string", "null"]},
            "sets": {"type": "array", "items": {"type": "string"}},
            "healthy": {"type": "boolean"},
            "inflight": {"type": "integer"},
            "max_inflight": {"type": ["integer", "null"]},
            "latency_ms": nullable,
            "share": {"type": "number", "description": "of the rule's recent traffic (0-1)"},
            "answers": {"type": "integer"},
            "failures": {"type": "integer"},
            "cost_usd": {"type": "number"},
            "input_price": nullable,
            "output_price": nullable,
        },
    }
    stats = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["rule", "strategy", "targets"],
                    "properties": {
                        "rule": {"type": "string"},
                        "strategy": {"type": "string"},
                        "targets": {"type": "array", "items": target},
                    },
                },
            }
        },
    }
    return {
        "RouteStats": stats,
        "CatalogModel": model,
        "ModelSpecInput": spec,
        "Explained": explained,
        "ExplainRequest": asked,
    }


def routing_paths() -> dict[str, Any]:
    one = {
        "description": "The model's catalog entry",
        "content": {"application/json": {"schema": {"$ref": _REF + "CatalogModel"}}},
    }
    listed = {
        "description": "Every model of the catalog",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data", "next"],
                    "properties": {
                        "data": {"type": "array", "items": {"$ref": _REF + "CatalogModel"}},
                        "next": {"type": "null"},
                    },
                }
            }
        },
    }
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    unauthorized = {"401": _error("The admin key is missing or wrong")}
    return {
        "/admin/models": {
            "get": {
                "summary": "The model catalog: built-in, the file's and the store's entries",
                "operationId": "list_models",
                "responses": {"200": listed, **unauthorized},
            }
        },
        "/admin/models/{name}": {
            "parameters": [name],
            "get": {
                "summary": "One model of the catalog",
                "operationId": "get_model",
                "responses": {"200": one, **unauthorized, "404": _error("Not in the catalog")},
            },
            "put": {
                "summary": "Set a store entry over the built-in one",
                "operationId": "put_model",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF + "ModelSpecInput"}}},
                },
                "responses": {
                    "200": one,
                    "201": one,
                    **unauthorized,
                    "400": _error("The body is not a JSON object"),
                    "409": _error("The file's entry (read-only), or no store"),
                    "412": _error("Changed by another writer"),
                    "422": _error("Invalid fields"),
                },
            },
            "delete": {
                "summary": "Remove the store entry (the built-in one applies again)",
                "operationId": "delete_model",
                "responses": {
                    "204": {"description": "Deleted"},
                    **unauthorized,
                    "404": _error("No store entry"),
                    "409": _error("The file's entry (read-only), or no store"),
                    "412": _error("Changed by another writer"),
                },
            },
        },
        "/admin/route/stats": {
            "get": {
                "summary": "Every rule's targets as routing sees them now",
                "operationId": "route_stats",
                "responses": {
                    "200": {
                        "description": "Price, latency, health, load and share per target",
                        "content": {"application/json": {"schema": {"$ref": _REF + "RouteStats"}}},
                    },
                    **unauthorized,
                },
            }
        },
        "/admin/route/explain": {
            "post": {
                "summary": "The routing decision for a request, made without sending it",
                "operationId": "explain_route",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF + "ExplainRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "The rule, the explanation and the plan",
                        "content": {"application/json": {"schema": {"$ref": _REF + "Explained"}}},
                    },
                    **unauthorized,
                    "400": _error("Not a request, or no target can serve it"),
                    "404": _error("No rule serves the model, or no such consumer"),
                    "422": _error("No body to explain"),
                },
            }
        },
    }
