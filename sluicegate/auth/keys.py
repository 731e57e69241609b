"""Virtual keys: minted by the Admin API or the CLI, shown once, kept as a keyed hash.

A key is ``sg-`` and 43 random URL-safe characters (256 bits); its first eleven
characters (``sg-AbCd1234``) are its ``prefix``, safe to show in lists and logs.
The store keeps a record of kind ``key`` per key: the consumer it acts for, the
HMAC of the key under ``SLUICEGATE_KEY_SECRET``, and what narrows it (expiry,
rules, models, limits, budget). Revoking keeps the record (``revoked_at``) so that
lists and audit rows still explain the prefix; rotating mints a successor and
lets the old key live for a grace period.

A key belongs to its consumer, not to the consumer's name: a key of a consumer
of the store names the consumer's id too, so that a consumer deleted and made
again under the same name starts without keys. A consumer of the file has no id
but its name; its keys are revoked when a file without it is loaded (``orphans``).

Each live key compiles into a ``ConsumerEntry`` of its own, so checking a key on
the request path stays one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Container, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from sluicegate.config.base import Duration, Name, Strict
from sluicegate.config.mcp import check_allow_list
from sluicegate.config.model import Budget, Limits
from sluicegate.routing.compile import limits_of
from sluicegate.routing.table import ConsumerEntry, RoutingTable, hash_key, models_body, narrower
from sluicegate.stores.base import Record

log = logging.getLogger("sluicegate")

KEY_SECRET_ENV = "SLUICEGATE_KEY_SECRET"
PREFIX_LENGTH = 11  # "sg-" and eight characters


class NewKey(Strict):
    """What a client asks for when minting a key (every field optional)."""

    name: str | None = Field(default=None, max_length=128)
    expires_in: Duration | None = Field(default=None, gt=0)
    rules: list[str] | None = None
    models: list[str] | None = None
    # MCP servers and server/tool globs, within its consumer's (docs/mcp.md); None: its
    # consumer's.
    mcp: Annotated[list[str] | None, AfterValidator(check_allow_list)] = None
    limits: list[Limits] | None = None
    budget: Budget | None = None


class KeyDoc(Strict):
    """A key as the store keeps it (``hash`` never leaves the store)."""

    consumer: Name
    prefix: str
    hash: str
    name: str | None = None
    expires_at: float | None = None  # unix seconds
    revoked_at: float | None = None
    rules: list[str] | None = None
    models: list[str] | None = None
    # MCP servers and server/tool globs, within its consumer's (docs/mcp.md); None: its
    # consumer's.
    mcp: Annotated[list[str] | None, AfterValidator(check_allow_list)] = None
    limits: list[Limits] | None = None
    budget: Budget | None = None
    rotated_from: str | None = None  # the id of the key this one replaced
    consumer_id: str | None = None  # the store consumer's id; None: a consumer of the file


def key_secret_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    value = (os.environ if environ is None else environ).get(KEY_SECRET_ENV, "")
    return value.encode()


def mint() -> tuple[str, str]:
    """A new key and its prefix."""
    key = "sg-" + secrets.token_urlsafe(32)
    return key, key[:PREFIX_LENGTH]


def new_doc(
    consumer: str,
    asked: NewKey,
    secret: bytes,
    now: float,
    rotated_from: str | None = None,
    consumer_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The plaintext key (shown once) and the document stored for it."""
    key, prefix = mint()
    doc = KeyDoc(
        consumer=consumer,
        consumer_id=consumer_id,
        prefix=prefix,
        hash=hash_key(key, secret).hex(),
        name=asked.name,
        expires_at=now + asked.expires_in if asked.expires_in is not None else None,
        rules=asked.rules,
        models=asked.models,
        mcp=asked.mcp,
        limits=asked.limits,
        budget=asked.budget,
        rotated_from=rotated_from,
    )
    return key, doc.model_dump(mode="json", exclude_none=True)


def status(doc: Mapping[str, Any], now: float) -> str:
    if doc.get("revoked_at") is not None:
        return "revoked"
    expires = doc.get("expires_at")
    if expires is not None and now >= expires:
        return "expired"
    return "active"


def belongs(doc: Mapping[str, Any], consumers: Container[str], ids: Mapping[str, str]) -> bool:
    """Whether the consumer a key was minted for is there: by name, and for a consumer of
    the store by its id (``ids``: name → id of the store's consumers) too."""
    name = doc.get("consumer")
    if not isinstance(name, str) or name not in consumers:
        return False
    wanted = doc.get("consumer_id")
    return wanted is None or ids.get(name) == wanted


def orphans(
    records: Sequence[Record], consumers: Container[str], ids: Mapping[str, str]
) -> list[Record]:
    """Live keys whose consumer is gone: revoked for good when a file is loaded, so that a
    consumer made again under the same name does not find them."""
    return [
        r
        for r in records
        if r.kind == "key"
        and r.doc.get("revoked_at") is None
        and not belongs(r.doc, consumers, ids)
    ]


def effective_rules(doc: Mapping[str, Any], consumer: ConsumerEntry | None) -> list[str] | None:
    """The rules a key may use: its own within its consumer's (None: every rule)."""
    if consumer is None:
        return []  # its consumer is gone: nothing
    own = doc.get("rules")
    if consumer.rules is None:
        return list(own) if own is not None else None
    if own is None:
        return sorted(consumer.rules)
    return [rule for rule in own if rule in consumer.rules]


def key_issues(
    records: Sequence[Record], consumers: set[str], rules: set[str], ids: Mapping[str, str]
) -> list[str]:
    """Problems of stored keys that would make the config invalid (their rules must exist)."""
    issues = []
    for record in records:
        if record.kind != "key" or record.doc.get("revoked_at") is not None:
            continue
        if not belongs(record.doc, consumers, ids):
            continue  # its consumer is gone: the key is dead
        for j, rule in enumerate(record.doc.get("rules") or []):
            if rule not in rules:
                issues.append(f"keys/{record.doc['prefix']}.rules[{j}]: unknown rule '{rule}'")
    return issues


def revoked_hashes(records: Sequence[Record]) -> frozenset[bytes]:
    """The hashes of revoked keys: a client still sending one is told so (``key_revoked``)."""
    return frozenset(
        bytes.fromhex(r.doc["hash"])
        for r in records
        if r.kind == "key" and r.doc.get("revoked_at") is not None and r.doc.get("hash")
    )


def key_entries(
    table: RoutingTable, records: Sequence[Record], ids: Mapping[str, str]
) -> dict[bytes, ConsumerEntry]:
    """An entry per live key whose consumer exists: the consumer's, narrowed by the key."""
    out: dict[bytes, ConsumerEntry] = {}
    for record in records:
        if record.kind != "key" or not belongs(record.doc, table.consumers, ids):
            continue
        doc = KeyDoc.model_validate(record.doc)
        base = table.consumers[doc.consumer]
        if doc.revoked_at is not None:
            continue
        allowed = narrower(base.rules, doc.rules)
        models = frozenset(doc.models) if doc.models is not None else None
        body = models_body(table.rules, allowed, models)
        limits = base.limits + limits_of(f"key:{record.id}", "key", doc.limits, doc.budget)
        # A key narrowed to some rules reaches services through those rules only.
        native = base.passthrough if doc.rules is None else frozenset()
        out[bytes.fromhex(doc.hash)] = ConsumerEntry(
            base.name,
            allowed,
            body,
            limits,
            record.id,
            doc.prefix,
            doc.expires_at,
            models,
            passthrough=native,
            realtime_sessions=base.realtime_sessions,
            groups=base.groups,
            mcp=tuple(doc.mcp) if doc.mcp is not None else None,
        )
    return out
