"""The running config is two layers: the YAML file's entities, then the store's.

``build`` merges them into one candidate document, validates it exactly as a
file is validated (so every reference is checked across both layers), and
compiles it. Consumer keys written through the API are kept only as SHA-256
hashes, which the compiler cannot take; each such consumer is compiled with a
random one-off placeholder key that is then swapped for the stored hashes.

The file wins. A store entity of the same kind and name as one of the file's is
shadowed: the file's runs, the store's is left out. A store entity that does not
fit the rest (it names a service that only an earlier file had, its key is
another consumer's) is left out too, and so, in turn, is what names it. Neither
stops a build: each becomes an ``EntityIssue`` of the built table, named by its
kind and name (``store rule 'side'``), never by its place in the candidate,
which is in no file. Only the file's own problems raise ``ConfigError``.
Writers (the Admin API, ``config apply``) refuse a change that adds an issue.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sluicegate.auth.keys import belongs, key_entries, orphans, revoked_hashes
from sluicegate.config.ids import entity_id
from sluicegate.config.issues import EntityIssue
from sluicegate.config.load import Loaded, allow_lists, validate_config
from sluicegate.config.order import Shadow, shadow_message, shadows
from sluicegate.errors import ConfigError
from sluicegate.routing.compile import compile_config
from sluicegate.routing.table import ConsumerEntry, RoutingTable, hash_key
from sluicegate.stores.base import Record
from sluicegate.stores.secrets import Vault

PLURAL = {
    "upstream": "upstreams",
    "service": "services",
    "rule": "rules",
    "mcp_server": "mcp_servers",
    "group": "groups",
    "consumer": "consumers",
}
SINGULAR = {plural: singular for singular, plural in PLURAL.items()}


def url_plural(plural: str) -> str:
    """A kind as its Admin API path spells it: ``mcp_servers`` is ``/admin/mcp-servers``."""
    return plural.replace("_", "-")


# ``services[4].upstream``: a place in the candidate document, and what follows it.
_PLACE = re.compile(r"^(upstreams|services|rules|mcp_servers|groups|consumers)\[(\d+)\]\.?(.*)$")


@dataclass(frozen=True, slots=True)
class Built:
    loaded: Loaded
    table: RoutingTable  # ``table.issues``: what of the store did not make it in, and why
    orphans: tuple[Record, ...] = ()  # live minted keys whose consumer is gone
    shadows: tuple[Shadow, ...] = ()  # over ``loaded.config.rules``: rules that never match


def file_documents(loaded: Loaded) -> dict[str, list[dict[str, Any]]]:
    """The file's entities as documents; ``exclude_unset`` keeps what was written only."""
    dumped = loaded.config.model_dump(mode="json", exclude_unset=True)
    return {plural: list(dumped.get(plural, [])) for plural in SINGULAR}


@dataclass(slots=True)
class _Candidate:
    """The merged document, and which store record each of its places holds."""

    data: dict[str, Any]
    places: dict[tuple[str, int], Record] = field(default_factory=dict)
    placeholders: dict[str, tuple[str, list[bytes]]] = field(default_factory=dict)
    problems: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # by record id

    def blame(self, issue: str) -> bool:
        """File ``issue`` under the store record it is about; False if it is the file's."""
        path, _, message = issue.partition(": ")
        found = _PLACE.match(path)
        record = self.places.get((found[1], int(found[2]))) if found else None
        if record is None or found is None:
            return False
        self.problems.setdefault(record.id, []).append((found[3], message))
        return True

    def relabel(self, text: str) -> str:
        """``services[4].x: …`` of a store record as ``store service 'name': x: …``."""
        path, sep, message = text.partition(": ")
        found = _PLACE.match(path)
        record = self.places.get((found[1], int(found[2]))) if found else None
        if record is None or found is None or not sep:
            return text
        inside = f"{found[3]}: " if found[3] else ""
        return f"store {record.kind} '{record.name}': {inside}{message}"


def _candidate(
    file: Loaded,
    records: Sequence[Record],
    vault: Vault,
    key_secret: bytes,
    catalog: Sequence[Record] = (),
) -> _Candidate:
    data: dict[str, Any] = dict(file_documents(file))
    data["gateway"] = file.config.gateway.model_dump(mode="json", exclude_unset=True)
    # The file's sections that are not entities stay the file's own.
    sections = {"pricing", "models", "telemetry", "audit", "auth"}
    data.update(file.config.model_dump(mode="json", include=sections, exclude_unset=True))
    # The catalog's store entries (/admin/models) under the file's: the file's win.
    models = dict(data.get("models") or {})
    for record in catalog:
        models.setdefault(record.name, record.doc)
    if models:
        data["models"] = models
    out = _Candidate(data)
    upstream_names = {r.id: r.name for r in records if r.kind == "upstream"}
    owners: dict[bytes, str] = {
        hash_key(key, key_secret): consumer.name
        for consumer in file.config.consumers
        for key in consumer.keys
    }
    for record in records:
        plural = PLURAL[record.kind]
        out.places[(plural, len(data[plural]))] = record
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
            if isinstance(plain, list):  # anything else is the schema's to refuse (422)
                hashes += [hash_key(k, key_secret) for k in plain if isinstance(k, str)]
            for digest in hashes:
                other = owners.setdefault(digest, record.name)
                if other != record.name:
                    problem = ("keys", f"a key is already held by consumer '{other}'")
                    out.problems.setdefault(record.id, []).append(problem)
            if hashes and not plain:
                placeholder = "sg-placeholder-" + secrets.token_urlsafe(24)
                doc["keys"] = [placeholder]
                out.placeholders[record.name] = (placeholder, hashes)
        data[plural].append(doc)
    return out


def _shadowed(file: Loaded, records: Sequence[Record]) -> tuple[list[Record], list[EntityIssue]]:
    """The store records the file leaves room for, and an issue for each it shadows."""
    places = {
        (kind, doc["name"]): i
        for kind, plural in PLURAL.items()
        for i, doc in enumerate(file_documents(file)[plural])
    }
    kept: list[Record] = []
    issues: list[EntityIssue] = []
    for record in records:
        at = places.get((record.kind, record.name))
        if at is None:
            kept.append(record)
            continue
        message = (
            f"shadowed: {file.source} defines a {record.kind} of this name "
            f"({PLURAL[record.kind]}[{at}]), which runs instead"
        )
        issues.append(EntityIssue(record.kind, record.name, record.id, "store", "", message, True))
    return kept, issues


def build(
    file: Loaded,
    records: Sequence[Record],
    vault: Vault,
    previous: RoutingTable | None = None,
    key_secret: bytes = b"",
) -> Built:
    """Validate and compile file + store, leaving out what of the store does not fit.

    Raises ``ConfigError`` for the file's own problems only (and for a stored secret
    the master key cannot open: that is the key's fault, not the entity's).
    ``previous`` (the running table) keeps the health of unchanged upstream pools;
    minted keys (records of kind ``key``) join the table under ``key_secret``.
    """
    minted = [r for r in records if r.kind == "key"]
    catalog = [r for r in records if r.kind == "model"]  # /admin/models: not entities
    records = [r for r in records if r.kind in PLURAL]  # not the gateway's own record
    kept, issues = _shadowed(file, records)
    while True:
        candidate = _candidate(file, kept, vault, key_secret, catalog)
        try:
            loaded: Loaded | None = validate_config(
                candidate.data, file.warnings, file.source, check_order=False
            )
        except ConfigError as exc:
            loaded = None
            theirs = [issue for issue in exc.issues if not candidate.blame(issue)]
            if theirs:
                raise ConfigError([candidate.relabel(issue) for issue in theirs]) from None
        if loaded is not None and not candidate.problems:
            break
        # Leave out what is at fault and look again: what named it may not fit now.
        for record in kept:
            for path, message in candidate.problems.get(record.id, []):
                issues.append(
                    EntityIssue(record.kind, record.name, record.id, "store", path, message, True)
                )
        kept = [r for r in kept if r.id not in candidate.problems]
    assert loaded is not None
    config = loaded.config
    consumers = {c.name for c in config.consumers}
    ids = {r.name: r.id for r in kept if r.kind == "consumer"}  # what keys belong to
    live, key_problems = _keys(minted, consumers, {r.name for r in config.rules}, ids)
    issues += key_problems
    found = shadows(config.rules, [*allow_lists(config.consumers, config.groups), *live.values()])
    issues += [_shadow_issue(config.rules, s, candidate) for s in found]
    warnings = [candidate.relabel(w) for w in loaded.warnings]
    table = compile_config(config, warnings, previous, key_secret)
    table = dataclasses.replace(
        table, warnings=tuple(candidate.relabel(w) for w in table.warnings), issues=tuple(issues)
    )
    if candidate.placeholders or minted:
        keys: dict[bytes, ConsumerEntry] = dict(table.keys)
        for placeholder, hashes in candidate.placeholders.values():
            entry = keys.pop(hash_key(placeholder, key_secret))
            keys.update(dict.fromkeys(hashes, entry))
        keys.update(key_entries(table, [r for r in minted if r.id in live], ids))
        table = dataclasses.replace(table, keys=keys, revoked=revoked_hashes(minted))
    # Gone means gone from both layers: a consumer left out above keeps its keys.
    everyone = consumers | {r.name for r in records if r.kind == "consumer"}
    every_id = {r.name: r.id for r in records if r.kind == "consumer"}
    gone = tuple(orphans(minted, everyone, every_id))
    return Built(loaded, table, gone, tuple(found))


def _keys(
    minted: Sequence[Record], consumers: set[str], rules: set[str], ids: dict[str, str]
) -> tuple[dict[str, list[str]], list[EntityIssue]]:
    """The live minted keys of running consumers (id → the rules they narrow to, for the
    order checks), and an issue for each left out because it names a rule that is gone."""
    live: dict[str, list[str]] = {}
    issues: list[EntityIssue] = []
    for record in minted:
        doc = record.doc
        if doc.get("revoked_at") is not None or not belongs(doc, consumers, ids):
            continue  # dead, or its consumer is not running: the consumer's issue says why
        prefix = str(doc.get("prefix", record.name))
        unknown = [
            EntityIssue(
                "key", prefix, record.id, "store", f"rules[{j}]", f"unknown rule '{rule}'", True
            )
            for j, rule in enumerate(doc.get("rules") or [])
            if rule not in rules
        ]
        if unknown:
            issues += unknown
        else:
            live[record.id] = list(doc.get("rules") or [])
    return live, issues


def _shadow_issue(rules: Sequence[Any], shadow: Shadow, candidate: _Candidate) -> EntityIssue:
    """A rule that never matches runs all the same (it is harmless, and what names it
    stays valid); the issue says which rules take its requests."""
    rule = rules[shadow.rule]
    record = candidate.places.get(("rules", shadow.rule))
    names = []
    for i in shadow.by:
        other = candidate.places.get(("rules", i))
        names.append(f"{'store ' if other else ''}rule '{rules[i].name}'")
    message = shadow_message(rules, shadow, names)
    if record is None:
        return EntityIssue(
            "rule", rule.name, entity_id("rule", rule.name), "file", "", message, False
        )
    return EntityIssue("rule", rule.name, record.id, "store", "", message, False)
