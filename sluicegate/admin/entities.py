"""Entities as the Admin API shows and takes them.

Shown: the validated model (defaults filled in) plus ``id``, ``source``,
``created_at`` and ``updated_at``; secret credential fields are left out and
named in ``credentials.secrets_set``; a consumer's keys are only counted
(``key_count``). Taken: the same document, where the read-only fields are
ignored, so that what a GET returns can be PUT back unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from sluicegate.admin.layers import PLURAL, file_documents
from sluicegate.auth.keys import status as key_status
from sluicegate.config.base import Strict
from sluicegate.config.ids import entity_id
from sluicegate.config.load import Loaded, validation_issues
from sluicegate.config.mcp import McpServer
from sluicegate.config.model import Consumer, Group, Rule, Service, Upstream
from sluicegate.errors import InvalidRequest, Unprocessable
from sluicegate.routing.table import RoutingTable, hash_key
from sluicegate.stores.base import Record
from sluicegate.stores.secrets import MASTER_KEY_ENV, SECRET_FIELDS, MissingMasterKey, Vault

MODELS: dict[str, type[Strict]] = {
    "upstream": Upstream,
    "service": Service,
    "rule": Rule,
    "mcp_server": McpServer,
    "group": Group,
    "consumer": Consumer,
}
M = TypeVar("M", bound=Strict)
READ_ONLY = frozenset({"id", "source", "created_at", "updated_at", "key_count", "position"})
_SHOWN_AS_SET = "set"  # stands in for a secret while the shown model is validated


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str
    id: str
    name: str
    doc: dict[str, Any]  # file: as loaded; store: as stored (secrets encrypted, key hashes)
    record: Record | None  # None for an entity of the YAML file

    @property
    def source(self) -> str:
        return "file" if self.record is None else "store"

    @property
    def tags(self) -> list[str]:
        if self.record is not None:
            return list(self.record.tags)
        return list(self.doc.get("tags", []))

    @property
    def etag(self) -> str:
        if self.record is not None:
            return f'"v{self.record.version}-{self.id[:8]}"'
        # A file entity changes only with the file; hash what is shown (never a secret).
        shown = present(self) if self.kind in MODELS else self.doc
        digest = hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS))
        return f'"file-{digest.hexdigest()[:16]}"'


def entities(
    file: Loaded, records: Sequence[Record], kind: str, tenant: str | None = None
) -> list[Entity]:
    """The file's entities of one kind, then the store's, in routing order.

    ``tenant``: the gateway, when not the default one (its file entities' ids name it)."""
    scope = f"{tenant}/" if tenant is not None else ""
    found = [
        Entity(kind, entity_id(kind, scope + doc["name"]), doc["name"], doc, None)
        for doc in file_documents(file)[PLURAL[kind]]
    ]
    found += [Entity(kind, r.id, r.name, r.doc, r) for r in records if r.kind == kind]
    return found


def find(items: Sequence[Entity], ref: str) -> Entity | None:
    for entity in items:
        if entity.id == ref:
            return entity
    for entity in items:
        if entity.name == ref:
            return entity
    return None


def json_response(body: Any, status: int = 200, etag: str | None = None) -> Response:
    headers = {"etag": etag} if etag else None
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def iso_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def present_key(record: Record, last_used: datetime | None, now: float) -> dict[str, Any]:
    """A minted key as the Admin API shows it: everything but the hash."""
    doc = record.doc

    def moment(value: float | None) -> str | None:
        return iso_time(datetime.fromtimestamp(value, UTC) if value is not None else None)

    return {
        "id": record.id,
        "prefix": doc["prefix"],
        "name": doc.get("name"),
        "consumer": doc["consumer"],
        "status": key_status(doc, now),
        "expires_at": moment(doc.get("expires_at")),
        "revoked_at": moment(doc.get("revoked_at")),
        "rules": doc.get("rules"),
        "models": doc.get("models"),
        "mcp": doc.get("mcp"),
        "limits": doc.get("limits"),
        "budget": doc.get("budget"),
        "rotated_from": doc.get("rotated_from"),
        "last_used_at": iso_time(last_used),
        "created_at": iso_time(record.created_at),
    }


def validated(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``, or a 422 listing every problem with its path."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        issues = [issue.partition(": ") for issue in validation_issues(exc)]
        raise Unprocessable([(path, message) for path, _, message in issues]) from None


def positions(table: RoutingTable, items: Sequence[Entity]) -> dict[str, int | None]:
    """Where each rule of ``items`` is tried (1: first), by id; None: not running (left
    out, or shadowed by the file's rule of the same name)."""
    left_out = {issue.id for issue in table.issues if issue.left_out}
    place = {rule.name: rule.index + 1 for rule in table.rules}
    return {
        e.id: None if e.id in left_out else place.get(e.name) for e in items if e.kind == "rule"
    }


def present(entity: Entity, places: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """``places``: rule positions by id (``positions``); a rule is shown with its own."""
    doc = {**entity.doc, "name": entity.name, "tags": entity.tags}
    secrets_set: list[str] = []
    creds = doc.get("credentials")
    if isinstance(creds, dict):
        secrets_set = sorted(k for k in SECRET_FIELDS if creds.get(k) is not None)
        doc["credentials"] = {k: _SHOWN_AS_SET if k in secrets_set else v for k, v in creds.items()}
    key_count = 0
    if entity.kind == "consumer":
        key_count = len(doc.pop("keys", None) or []) + len(doc.pop("key_hashes", None) or [])
        doc.pop("key_templates", None)  # kept for ``config export``; never shown
    shown = MODELS[entity.kind].model_validate(doc).model_dump(mode="json")
    if isinstance(shown.get("credentials"), dict):
        for field in SECRET_FIELDS:
            shown["credentials"].pop(field, None)
        shown["credentials"]["secrets_set"] = secrets_set
    if entity.kind == "consumer":
        shown.pop("keys", None)
        shown["key_count"] = key_count
    if entity.kind == "rule":
        shown["position"] = (places or {}).get(entity.id)
    if entity.kind == "mcp_server" and shown.get("env"):
        # A stdio server's environment often carries its tokens: names only.
        shown["env"] = dict.fromkeys(shown["env"], _SHOWN_AS_SET)
    record = entity.record
    return {
        "id": entity.id,
        **shown,
        "source": entity.source,
        "created_at": iso_time(record.created_at if record else None),
        "updated_at": iso_time(record.updated_at if record else None),
    }


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _clean_input(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k not in READ_ONLY}
    creds = body.get("credentials")
    if isinstance(creds, dict):
        creds = {k: v for k, v in creds.items() if k != "secrets_set"}
        for field in SECRET_FIELDS:
            value = creds.get(field)
            if value is not None and not isinstance(value, str):
                raise Unprocessable([(f"credentials.{field}", "must be a string")])
        body["credentials"] = creds
    return body


def merge_input(
    kind: str, body: dict[str, Any], existing: Entity | None, patch: bool
) -> dict[str, Any]:
    """The entity's next document: plaintext where the request wrote, stored values elsewhere.

    A secret left out keeps its stored value, ``null`` removes it; a PUT without
    ``credentials`` keeps them (``"credentials": null`` removes them). A consumer's
    ``keys`` replace its stored keys when given and keep them when left out.
    """
    body = _clean_input(body)
    old = existing.doc if existing is not None else None
    if old is None:
        doc = dict(body)
    elif patch:
        doc = _merge_patch(old, body)
    else:
        doc = dict(body)
        old_creds, new_creds = old.get("credentials"), body.get("credentials", ...)
        if isinstance(old_creds, dict):
            if new_creds is ...:
                doc["credentials"] = old_creds
            elif isinstance(new_creds, dict):
                kept = {
                    k: v for k, v in old_creds.items() if k in SECRET_FIELDS and k not in new_creds
                }
                doc["credentials"] = {**new_creds, **kept}
        if "keys" not in body and "key_hashes" in old:
            doc["key_hashes"] = old["key_hashes"]
            if "key_templates" in old:
                doc["key_templates"] = old["key_templates"]
    if existing is not None:
        doc.setdefault("name", existing.name)
    if isinstance(doc.get("credentials"), dict):
        doc["credentials"] = {
            k: v for k, v in doc["credentials"].items() if not (k in SECRET_FIELDS and v is None)
        }
    elif doc.get("credentials", ...) is None:
        doc.pop("credentials")
    if kind == "consumer" and doc.get("keys") is not None:
        doc.pop("key_hashes", None)
        doc.pop("key_templates", None)
    return doc


def new_secrets(doc: dict[str, Any]) -> list[str]:
    creds = doc.get("credentials")
    if not isinstance(creds, dict):
        return []
    return sorted(k for k in SECRET_FIELDS if isinstance(creds.get(k), str))


def seal(kind: str, doc: dict[str, Any], vault: Vault, key_secret: bytes = b"") -> dict[str, Any]:
    """The document as stored: secrets encrypted, keys hashed, name and tags in columns."""
    stored = {k: v for k, v in doc.items() if k not in ("name", "tags")}
    creds = stored.get("credentials")
    if isinstance(creds, dict):
        try:
            stored["credentials"] = vault.seal(creds)
        except MissingMasterKey:
            raise secret_refused(new_secrets(doc)) from None
    if kind == "consumer" and "keys" in stored:
        keys = stored.pop("keys") or []
        stored["key_hashes"] = sorted({hash_key(k, key_secret).hex() for k in keys})
    return stored


def secret_refused(fields: list[str]) -> InvalidRequest:
    names = ", ".join(f"credentials.{f}" for f in fields)
    return InvalidRequest(
        f"{names}: storing a secret needs {MASTER_KEY_ENV} (32 random bytes, urlsafe base64) "
        "in the gateway's environment",
        param=f"credentials.{fields[0]}" if fields else None,
        code="master_key_missing",
    )


def referrers(kind: str, target: Entity, everything: dict[str, list[Entity]]) -> list[str]:
    """``<kind>/<name>`` of every entity that refers to ``target``."""
    found: list[str] = []
    name = target.name
    if kind == "upstream":
        ids = {target.id, name, entity_id("upstream", name)}
        for svc in everything["service"]:
            if svc.doc.get("upstream") == name or svc.doc.get("upstream_id") in ids:
                found.append(f"services/{svc.name}")
    elif kind == "service":
        for rule in everything["rule"]:
            steps = [*(rule.doc.get("targets") or []), *(rule.doc.get("fallbacks") or [])]
            if any(isinstance(s, dict) and s.get("service") == name for s in steps):
                found.append(f"rules/{rule.name}")
    elif kind == "rule":
        for group in everything["group"]:
            if name in (group.doc.get("rules") or []):
                found.append(f"groups/{group.name}")
        for consumer in everything["consumer"]:
            if name in (consumer.doc.get("rules") or []):
                found.append(f"consumers/{consumer.name}")
    elif kind == "group":
        for consumer in everything["consumer"]:
            if name in (consumer.doc.get("groups") or []):
                found.append(f"consumers/{consumer.name}")
    elif kind == "mcp_server":
        for plural, holder in (("groups", "group"), ("consumers", "consumer")):
            for entity in everything[holder]:
                allowed = entity.doc.get("mcp") or []
                if any(str(item).partition("/")[0] == name for item in allowed):
                    found.append(f"{plural}/{entity.name}")
    return found
