"""The running config is two layers: the YAML file's entities, then the store's.

``build`` merges them into one candidate document, validates it exactly as a
file is validated (so every reference is checked across both layers), and
compiles it. Consumer keys written through the API are kept only as SHA-256
hashes, which the compiler cannot take; each such consumer is compiled with a
random one-off placeholder key that is then swapped for the stored hashes.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sluicegate.auth.keys import key_entries, key_issues, orphans, revoked_hashes
from sluicegate.config.load import Loaded, validate_config
from sluicegate.errors import ConfigError
from sluicegate.routing.compile import compile_config
from sluicegate.routing.table import ConsumerEntry, RoutingTable, hash_key
from sluicegate.stores.base import Record
from sluicegate.stores.secrets import Vault

PLURAL = {
    "upstream": "upstreams",
    "service": "services",
    "rule": "rules",
    "group": "groups",
    "consumer": "consumers",
}
SINGULAR = {plural: singular for singular, plural in PLURAL.items()}


@dataclass(frozen=True, slots=True)
class Built:
    loaded: Loaded
    table: RoutingTable
    orphans: tuple[Record, ...] = ()  # live minted keys whose consumer is gone


def file_documents(loaded: Loaded) -> dict[str, list[dict[str, Any]]]:
    """The file's entities as documents; ``exclude_unset`` keeps what was written only."""
    dumped = loaded.config.model_dump(mode="json", exclude_unset=True)
    return {plural: list(dumped.get(plural, [])) for plural in SINGULAR}


def position(loaded: Loaded, records: Sequence[Record], kind: str, id: str | None) -> int:
    """Where an entity of the store lands in the candidate's list of its kind."""
    count = len(getattr(loaded.config, PLURAL[kind]))
    for record in records:
        if record.kind == kind:
            if record.id == id:
                return count
            count += 1
    return count


def build(
    file: Loaded,
    records: Sequence[Record],
    vault: Vault,
    previous: RoutingTable | None = None,
    key_secret: bytes = b"",
) -> Built:
    """Validate and compile file + store; raises ``ConfigError`` with candidate paths.

    ``previous`` (the running table) keeps the health of unchanged upstream pools;
    minted keys (records of kind ``key``) join the table under ``key_secret``.
    """
    minted = [r for r in records if r.kind == "key"]
    records = [r for r in records if r.kind in PLURAL]  # not the gateway's own record
    ids = {r.name: r.id for r in records if r.kind == "consumer"}  # what keys belong to
    data: dict[str, Any] = dict(file_documents(file))
    data["gateway"] = file.config.gateway.model_dump(mode="json", exclude_unset=True)
    # The file's sections that are not entities stay the file's own.
    sections = {"pricing", "telemetry", "audit", "auth"}
    data.update(file.config.model_dump(mode="json", include=sections, exclude_unset=True))
    upstream_names = {r.id: r.name for r in records if r.kind == "upstream"}
    placeholders: dict[str, tuple[str, list[bytes]]] = {}
    owners: dict[bytes, str] = {
        hash_key(key, key_secret): consumer.name
        for consumer in file.config.consumers
        for key in consumer.keys
    }
    issues: list[str] = []
    for record in records:
        plural = PLURAL[record.kind]
        where = f"{plural}[{len(data[plural])}]"
        doc = {**record.doc, "name": record.name, "tags": list(record.tags)}
        if isinstance(doc.get("credentials"), dict):
            # Named, not numbered: a secret no key opens must be findable by the operator.
            doc["credentials"] = vault.open(
                doc["credentials"], f"{plural}/{record.name}.credentials"
            )
        upstream_id = doc.get("upstream_id")
        if (
            record.kind == "service"
            and isinstance(upstream_id, str)
            and upstream_id in upstream_names
        ):
            # Store upstreams have random ids; the checks and the compiler know names.
            doc["upstream"] = upstream_names[doc.pop("upstream_id")]
        if record.kind == "consumer":
            hashes = [bytes.fromhex(h) for h in doc.pop("key_hashes", [])]
            doc.pop("key_templates", None)  # the ${VAR} references of applied keys, for export
            plain = doc.get("keys")
            hashes += (
                [hash_key(k, key_secret) for k in plain if isinstance(k, str)] if plain else []
            )
            for digest in hashes:
                other = owners.setdefault(digest, record.name)
                if other != record.name:
                    issues.append(f"{where}.keys: a key is already held by consumer '{other}'")
            if hashes and not plain:
                placeholder = "sg-placeholder-" + secrets.token_urlsafe(24)
                doc["keys"] = [placeholder]
                placeholders[record.name] = (placeholder, hashes)
        data[plural].append(doc)
    try:
        loaded = validate_config(data, file.warnings, source=file.source)
    except ConfigError as exc:
        raise ConfigError(exc.issues + issues) from None
    config = loaded.config
    consumers = {c.name for c in config.consumers}
    issues += key_issues(minted, consumers, {r.name for r in config.rules}, ids)
    if issues:
        raise ConfigError(issues)
    table = compile_config(config, loaded.warnings, previous, key_secret)
    if placeholders or minted:
        keys: dict[bytes, ConsumerEntry] = dict(table.keys)
        for placeholder, hashes in placeholders.values():
            entry = keys.pop(hash_key(placeholder, key_secret))
            keys.update(dict.fromkeys(hashes, entry))
        keys.update(key_entries(table, minted, ids))
        table = dataclasses.replace(table, keys=keys, revoked=revoked_hashes(minted))
    return Built(loaded, table, tuple(orphans(minted, consumers, ids)))
