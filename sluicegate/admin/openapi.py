"""``GET /admin/openapi.json``: the Admin API described from the config models.

Inputs are the models' validation schemas (``<Model>Input``); answers are their
serialization schemas, changed exactly as ``admin.entities.present`` changes an
entity: secrets left out and named in ``secrets_set``, keys counted, the
read-only fields added.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from sluicegate import __version__
from sluicegate.admin.entities import MODELS
from sluicegate.admin.layers import PLURAL
from sluicegate.stores.secrets import SECRET_FIELDS

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
        paths[f"/admin/{plural}"] = {
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
        paths[f"/admin/{plural}/{{id_or_name}}"] = {
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
    paths["/admin/health"] = {
        "get": {
            "summary": "The state of every balanced target",
            "operationId": "health",
            "responses": _responses({"200": {"description": "Targets and their health"}}),
        }
    }
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
        props["id"] = {"type": "string", "format": "uuid", "readOnly": True}
        props["source"] = {"type": "string", "enum": ["file", "store"], "readOnly": True}
        props["created_at"] = timestamp
        props["updated_at"] = timestamp
        schema["required"] = sorted({*schema.get("required", []), "id", "name", "source"})
    schemas["Error"] = _error()
    return {
        "openapi": "3.1.0",
        "info": {"title": "sluicegate Admin API", "version": __version__},
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
