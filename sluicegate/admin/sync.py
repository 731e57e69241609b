"""Declarative sync: ``sluicegate config apply FILE`` and ``sluicegate config export``.

``plan`` compares a file's entities with the store's, by kind and name, and
returns the changes that make the store equal to the file; ``apply`` writes
them in one transaction, after validating the whole result exactly as a
running gateway will load it. Entities are compared in their validated form
(defaults filled in, ``30s`` equal to ``30``); secrets and keys by digest, so
that nothing is rewritten when nothing changed.

Secrets never leave the store in plaintext. A secret written from a file keeps
the ``${VAR}`` reference it was written with beside its encrypted value, and
``export`` writes that reference back; a secret written through the Admin API
has none and is exported as a reference to a variable named after its entity
and field (``${SG_SERVICES_OPENAI_HEADER_VALUE}``), listed in the header. A
consumer key is stored as a hash: keys applied as ``${VAR}`` come back as
such, others cannot, and a consumer without ``keys`` keeps its stored keys.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import yaml

from sluicegate.admin.entities import MODELS, seal
from sluicegate.admin.layers import PLURAL, build, file_documents
from sluicegate.auth.keys import key_secret_from_env
from sluicegate.config.ids import entity_id
from sluicegate.config.issues import EntityIssue
from sluicegate.config.load import Loaded, references
from sluicegate.config.model import Config, Tenant
from sluicegate.config.tenants import split
from sluicegate.errors import ConfigError
from sluicegate.routing.table import hash_key
from sluicegate.stores.base import Change, Record, Store
from sluicegate.stores.secrets import MASTER_KEY_ENV, SECRET_FIELDS, Vault, is_encrypted

KINDS = ("upstream", "service", "rule", "mcp_server", "group", "consumer")
_SYMBOL = {"create": "+", "update": "~", "delete": "-"}
_UNSET = re.compile(
    r"^(?:gateways\[\d+\]\.)?(\w+)\[(\d+)\]\.(credentials\.(\w+)|keys\[\d+\]): environment variable"
)


@dataclass(frozen=True, slots=True)
class Plan:
    changes: list[Change]  # in the order they are written: deletes, then updates, creates
    lines: list[str]  # ``+ service openai``, ``~ rule chat (order)``, ``- consumer old``


@dataclass(slots=True)
class _Wanted:
    kind: str
    name: str
    doc: dict[str, Any]  # as written in the file, interpolated
    secret_templates: dict[str, str] = field(default_factory=dict)  # field -> ${VAR} form
    key_templates: list[str] = field(default_factory=list)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _templates(raw: Any) -> tuple[dict[str, str], list[str]]:
    """The ``${VAR}`` forms of an entity's secrets and keys in the uninterpolated file."""
    secrets: dict[str, str] = {}
    keys: list[str] = []
    if not isinstance(raw, dict):
        return secrets, keys
    creds = raw.get("credentials")
    if isinstance(creds, dict):
        for name in SECRET_FIELDS:
            value = creds.get(name)
            if isinstance(value, str) and references(value):
                secrets[name] = value
    raw_keys = raw.get("keys")
    if isinstance(raw_keys, list):
        keys = [k for k in raw_keys if isinstance(k, str) and references(k)]
    return secrets, keys


def wanted(loaded: Loaded, raw: Any) -> list[_Wanted]:
    """The file's entities, with the ``${VAR}`` forms of their secrets; raises ``ConfigError``."""
    unset = []
    for warning in loaded.warnings:
        found = _UNSET.match(warning)
        if found and (found.group(4) is None or found.group(4) in SECRET_FIELDS):
            unset.append(warning.replace("is not set", "is not set (a secret cannot be empty)"))
    if unset:
        raise ConfigError(unset)
    raw = raw if isinstance(raw, dict) else {}
    out = []
    for kind in KINDS:
        plural = PLURAL[kind]
        raw_items = raw.get(plural) if isinstance(raw.get(plural), list) else []
        for i, doc in enumerate(file_documents(loaded)[plural]):
            secrets, keys = _templates(raw_items[i] if i < len(raw_items) else None)
            out.append(_Wanted(kind, doc["name"], doc, secrets, keys))
    return out


def _upstream_refs(names: dict[str, str], doc: dict[str, Any]) -> dict[str, Any]:
    """A service's ``upstream_id`` (store id, file id or name) as ``upstream: <name>``."""
    ref = doc.get("upstream_id")
    if isinstance(ref, str) and ref in names:
        doc = {k: v for k, v in doc.items() if k != "upstream_id"}
        doc["upstream"] = names[ref]
    return doc


def _fingerprint(
    kind: str,
    name: str,
    doc: dict[str, Any],
    secrets: dict[str, str],
    key_hashes: list[str],
    names: dict[str, str],
) -> bytes:
    """The entity's meaning, comparable across files and stores (secrets as digests).

    The ``${VAR}`` forms kept beside secrets are bookkeeping, not meaning: renaming
    the variable of an unchanged secret is no change, so export then apply is a no-op.
    """
    doc = _upstream_refs(names, {k: v for k, v in doc.items() if k != "name"})
    doc["name"] = name
    if isinstance(doc.get("credentials"), dict):
        doc["credentials"] = {**doc["credentials"], **secrets}
    if kind == "consumer":
        doc.pop("key_hashes", None)
        doc.pop("key_templates", None)
        doc["keys"] = sorted(key_hashes)
    shown = MODELS[kind].model_validate(doc).model_dump(mode="json")
    return orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)


def _stored_fingerprint(record: Record, vault: Vault, names: dict[str, str]) -> bytes:
    doc = {**record.doc, "tags": list(record.tags)}
    secrets: dict[str, str] = {}
    creds = doc.get("credentials")
    if isinstance(creds, dict):
        where = f"{PLURAL[record.kind]}/{record.name}.credentials"
        secrets = {
            k: _digest(vault.decrypt(v, f"{where}.{k}"))
            for k, v in creds.items()
            if is_encrypted(v)
        }
    key_hashes = list(doc.get("key_hashes") or [])
    return _fingerprint(record.kind, record.name, doc, secrets, key_hashes, names)


def _wanted_fingerprint(item: _Wanted, existing: Record | None, names: dict[str, str]) -> bytes:
    creds = item.doc.get("credentials")
    secrets = {}
    if isinstance(creds, dict):
        secrets = {k: _digest(v) for k, v in creds.items() if k in SECRET_FIELDS and v is not None}
    doc = {k: v for k, v in item.doc.items() if k != "keys"}
    hashes = _key_hashes(item, existing)
    return _fingerprint(item.kind, item.name, doc, secrets, hashes, names)


def _stored_doc(item: _Wanted, vault: Vault, existing: Record | None) -> dict[str, Any]:
    """The document a store keeps for a file entity: secrets sealed, with their ``${VAR}``."""
    doc = dict(item.doc)
    kept: dict[str, Any] = {}
    if item.kind == "consumer" and "keys" not in doc and existing is not None:
        # No `keys` in the file: the stored keys stay, as with a PUT of the Admin API.
        kept = {k: existing.doc[k] for k in ("key_hashes", "key_templates") if k in existing.doc}
    stored = {**seal(item.kind, doc, vault, key_secret_from_env()), **kept}
    creds = stored.get("credentials")
    if isinstance(creds, dict):
        for name, template in item.secret_templates.items():
            if is_encrypted(creds.get(name)):
                creds[name] = {**creds[name], "template": template}
    if item.key_templates:
        stored["key_templates"] = sorted(set(item.key_templates))
    return stored


def _key_hashes(item: _Wanted, existing: Record | None) -> list[str]:
    if item.kind == "consumer" and "keys" not in item.doc and existing is not None:
        return list(existing.doc.get("key_hashes") or [])
    return [hash_key(k, key_secret_from_env()).hex() for k in item.doc.get("keys") or []]


def _needs_vault(items: list[_Wanted], vault: Vault) -> None:
    if vault.enabled:
        return
    missing = [
        f"{PLURAL[item.kind]}/{item.name}: storing credentials.{name} needs {MASTER_KEY_ENV}"
        for item in items
        for name, value in (item.doc.get("credentials") or {}).items()
        if name in SECRET_FIELDS and value is not None
    ]
    if missing:
        raise ConfigError(missing)


def plan(gateway: Loaded, items: list[_Wanted], records: list[Record], vault: Vault) -> Plan:
    """The changes that make ``records`` equal to ``items``; validates the result.

    ``gateway`` is the file whose ``gateway`` section the result is validated
    with. Raises ``ConfigError`` when the result would not load.
    """
    _needs_vault(items, vault)
    now = datetime.now(UTC)
    current = {(r.kind, r.name): r for r in records}
    stored_names = {r.id: r.name for r in records if r.kind == "upstream"}
    wanted_names = {
        ref: item.name
        for item in items
        if item.kind == "upstream"
        for ref in (item.name, entity_id("upstream", item.name))
    }
    reorder = _rules_out_of_order(items, records)
    creates: list[Change] = []
    updates: list[Change] = []
    lines: list[str] = []
    after: list[Record] = []  # the store once the plan is written, to validate
    step = 0
    for item in items:
        existing = current.get((item.kind, item.name))
        created_at: datetime | None = None
        if existing is None or (item.kind == "rule" and reorder):
            # Rules match in creation order, and lists show it: time them in the file's order.
            step += 1
            created_at = now + timedelta(microseconds=step)
        tags = tuple(str(t) for t in item.doc.get("tags", []))
        if existing is None:
            doc = _stored_doc(item, vault, None)
            change = Change(
                "create", item.kind, str(uuid.uuid4()), item.name, doc, tags, 0, created_at or now
            )
            creates.append(change)
            lines.append(f"+ {item.kind} {item.name}")
        else:
            same = _stored_fingerprint(existing, vault, stored_names) == _wanted_fingerprint(
                item, existing, wanted_names
            )
            if same and created_at is None:
                after.append(existing)
                continue
            doc = _stored_doc(item, vault, existing)
            change = Change(
                "update", item.kind, existing.id, item.name, doc, tags, existing.version, created_at
            )
            updates.append(change)
            lines.append(f"~ {item.kind} {item.name}" + (" (order)" if same else ""))
        after.append(_record(gateway, change, now))
    deletes = []
    wanted_keys = {(item.kind, item.name) for item in items}
    for kind in reversed(KINDS):
        for record in records:
            if record.kind == kind and (kind, record.name) not in wanted_keys:
                deletes.append(
                    Change("delete", kind, record.id, record.name, {}, (), record.version)
                )
                lines.append(f"- {kind} {record.name}")
    after.sort(key=lambda r: (r.created_at, r.id))
    # The store's minted keys stay: one naming a rule the file drops must not be left behind.
    keys = [r for r in records if r.kind == "key"]
    built = build(gateway, [*after, *keys], vault, key_secret=key_secret_from_env())
    if built.table.issues:  # nothing is written: each issue at its place in the file
        raise ConfigError([_in_file(items, issue) for issue in built.table.issues])
    return Plan([*deletes, *updates, *creates], lines)


def _in_file(items: list[_Wanted], issue: EntityIssue) -> str:
    """An issue of the store-to-be, told at the entity's place in the applied file."""
    if issue.kind not in PLURAL:  # a minted key: the store's, in no file
        return issue.line()
    index = [item.name for item in items if item.kind == issue.kind].index(issue.name)
    where = f"{PLURAL[issue.kind]}[{index}]" + (f".{issue.path}" if issue.path else "")
    message = issue.message.replace("store rule '", "rule '")  # all of them are the file's
    return f"{where}: {message}"


def _rules_out_of_order(items: list[_Wanted], records: list[Record]) -> bool:
    """Whether the stored rules that stay are not in the file's order (new ones go last)."""
    stored = [r.name for r in records if r.kind == "rule"]
    wanted_rules = [item.name for item in items if item.kind == "rule"]
    kept = [name for name in wanted_rules if name in stored]
    if kept != [name for name in stored if name in kept]:
        return True
    # A new rule before a kept one would land after it.
    seen_new = False
    for name in wanted_rules:
        if name not in stored:
            seen_new = True
        elif seen_new:
            return True
    return False


def _record(gateway: Loaded, change: Change, now: datetime) -> Record:
    return Record(
        id=change.id,
        gateway=gateway.config.gateway.name,
        kind=change.kind,
        name=change.name,
        doc=change.doc,
        tags=change.tags,
        created_at=change.created_at or now,
        updated_at=now,
        version=change.version + 1,
    )


def gateway_only(loaded: Loaded) -> Loaded:
    """The file's ``gateway`` section alone: the file layer a store-only gateway runs with."""
    return Loaded(Config(gateway=loaded.config.gateway), [], loaded.source)


@dataclass(frozen=True, slots=True)
class GatewayPlan:
    """What ``config apply`` does to one gateway of the store."""

    name: str
    changes: list[Change]
    lines: list[str]


def _tenant_doc(tenant: Tenant) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The gateway record of a tenant of the file: its hosts, description and own ``auth``."""
    include = {"hosts", "description", "auth"}
    doc = tenant.model_dump(mode="json", include=include, exclude_none=True)
    if not doc.get("auth"):
        doc.pop("auth", None)  # keys only
    return doc, tuple(tenant.tags)


def _unstorable(tenant: Tenant, index: int) -> list[str]:
    jwt = tenant.auth.jwt
    if jwt is None or jwt.secret is None:
        return []
    # The store keeps no plaintext secret, and this one has no master-key sealing.
    return [
        f"gateways[{index}].auth.jwt.secret: a shared secret is not written into the store; "
        "use jwks_url or public_key"
    ]


async def plan_store(store: Store, loaded: Loaded, raw: Any, vault: Vault) -> list[GatewayPlan]:
    """The changes that make every gateway of the store equal to the file: the default
    gateway's entities, each of ``gateways:`` (its record and entities), and the removal
    of gateways the file does not name. Raises ``ConfigError``; writes nothing."""
    raw = raw if isinstance(raw, dict) else {}
    raw_tenants = raw.get("gateways") if isinstance(raw.get("gateways"), list) else []
    tenants = {t.name: (i, t) for i, t in enumerate(loaded.config.gateways)}
    out: list[GatewayPlan] = []
    issues: list[str] = []
    for name, part in split(loaded).items():
        records = await store.entities(name)
        own = next((r for r in records if r.kind == "gateway"), None)
        index, tenant = tenants.get(name, (None, None))
        refused = _unstorable(tenant, index) if tenant is not None and index is not None else []
        if refused:
            issues += refused
            continue
        raw_part = (
            raw if index is None else (raw_tenants[index] if index < len(raw_tenants) else {})
        )
        try:
            found = plan(
                gateway_only(part),
                wanted(part, raw_part),
                [r for r in records if r.kind != "gateway"],
                vault,
            )
        except ConfigError as exc:
            where = "" if tenant is None else f"gateways[{index}]."
            issues += [where + issue for issue in exc.issues]
            continue
        # A consumer's minted keys go with it (the Admin API does the same).
        dropped = {c.name for c in found.changes if c.op == "delete" and c.kind == "consumer"}
        keys = [r for r in records if r.kind == "key" and r.doc.get("consumer") in dropped]
        changes = [Change("delete", "key", r.id, r.name, {}, (), r.version) for r in keys]
        changes += found.changes
        lines = list(found.lines)
        if tenant is not None:
            lines = [f"{line} (gateway {name})" for line in lines]
        if tenant is not None:
            doc, tags = _tenant_doc(tenant)
            if own is None:
                changes.append(Change("create", "gateway", str(uuid.uuid4()), name, doc, tags))
                lines.insert(0, f"+ gateway {name}")
            elif own.doc != doc or own.tags != tags:
                changes.append(Change("update", "gateway", own.id, name, doc, tags, own.version))
                lines.insert(0, f"~ gateway {name}")
        if tenant is None and name != loaded.config.gateway.name:
            continue
        out.append(GatewayPlan(name, changes, lines))
    if issues:
        raise ConfigError(issues)
    wanted_names = set(split(loaded))
    for name in await store.gateways():
        if name in wanted_names:
            continue
        records = await store.entities(name)
        if not records:
            continue
        order = {kind: i for i, kind in enumerate(("gateway", *KINDS))}
        records.sort(key=lambda r: -order.get(r.kind, 0))
        drops = [Change("delete", r.kind, r.id, r.name, {}, (), r.version) for r in records]
        lines = [f"- {r.kind} {r.name} (gateway {name})" for r in records if r.kind != "gateway"]
        out.append(GatewayPlan(name, drops, [f"- gateway {name}", *lines]))
    return out


async def apply_store(store: Store, plans: list[GatewayPlan]) -> int:
    """Write the plans, one transaction per gateway; the number of changes written."""
    written = 0
    for item in plans:
        if item.changes:
            await store.ensure_gateway(item.name)
            await store.write_many(item.name, item.changes)
            written += len(item.changes)
    return written


# -- export -----------------------------------------------------------------------


def _variable(kind: str, name: str, field_name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"SG_{PLURAL[kind]}_{name}_{field_name}".upper())


def export_documents(records: list[Record]) -> tuple[dict[str, Any], list[str]]:
    """The store's entities as a config document, and what the header must say."""
    names = {r.id: r.name for r in records if r.kind == "upstream"}
    notes: list[str] = []
    data: dict[str, Any] = {}
    for kind in KINDS:
        items = []
        for record in records:
            if record.kind != kind:
                continue
            doc: dict[str, Any] = {"name": record.name}
            doc.update(_upstream_refs(names, dict(record.doc)))
            creds = doc.get("credentials")
            if isinstance(creds, dict):
                shown = {}
                for key, value in creds.items():
                    if not is_encrypted(value):
                        shown[key] = value
                    elif isinstance(value.get("template"), str):
                        shown[key] = value["template"]
                    else:
                        variable = _variable(kind, record.name, key)
                        shown[key] = "${" + variable + "}"
                        notes.append(
                            f"{variable}: credentials.{key} of {PLURAL[kind]}/{record.name}"
                        )
                doc["credentials"] = shown
            if kind == "consumer":
                hashes = doc.pop("key_hashes", None) or []
                templates = doc.pop("key_templates", None) or []
                if len(templates) == len(hashes) and templates:
                    doc["keys"] = list(templates)
                elif hashes:
                    notes.append(
                        f"consumers/{record.name}: {len(hashes)} key(s) stored as hashes only; "
                        "left out, so apply keeps them"
                    )
            if record.tags:
                doc["tags"] = list(record.tags)
            items.append(doc)
        if items:
            data[PLURAL[kind]] = items
    # The model catalog's store entries (/admin/models), as the file's models: section.
    catalog = {r.name: dict(r.doc) for r in records if r.kind == "model"}
    if catalog:
        data["models"] = catalog
    return data, notes


def export_yaml(
    gateway: dict[str, Any],
    records: list[Record],
    source: str,
    tenants: list[tuple[Record, list[Record]]] | None = None,
) -> str:
    """The default gateway's entities, then each other gateway (its record and entities)."""
    data, notes = export_documents(records)
    others = []
    for own, held in tenants or []:
        doc: dict[str, Any] = {"name": own.name, **own.doc}
        if own.tags:
            doc["tags"] = list(own.tags)
        entities, more = export_documents(held)
        if entities.pop("models", None):  # a gateway of gateways: has no catalog of its own
            more.append("its /admin/models entries are left out (set them under models:)")
        others.append({**doc, **entities})
        notes += [f"{note} (gateway {own.name})" for note in more]
    header = [
        f"# sluicegate config export of gateway '{gateway.get('name', 'default')}' ({source}).",
        "# Secrets are never written in plaintext: each is a ${VAR} reference, the one it",
        "# was applied with from a file, or else one named after its entity and field.",
    ]
    if notes:
        header.append(
            "# Set these variables before `sluicegate config apply`, or mind these notes:"
        )
        header += [f"#   {note}" for note in notes]
    document = {"gateway": gateway, **data}
    if others:
        document["gateways"] = others
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body
