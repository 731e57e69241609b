"""Virtual keys: minted by the Admin API or the CLI, shown once, kept as a keyed hash.

A key is ``sg-`` and 43 random URL-safe characters (256 bits); its first eleven
characters (``sg-AbCd1234``) are its ``prefix``, safe to show in lists and logs.
The store keeps a record of kind ``key`` per key: the consumer it acts for, the
HMAC of the key under ``SLUICEGATE_KEY_SECRET``, and what narrows it (expiry,
rules, models, limits, budget). Revoking keeps the record (``revoked_at``) so that
lists and audit rows still explain the prefix; rotating mints a successor and
lets the old key live for a grace period.

Each live key compiles into a ``ConsumerEntry`` of its own, so checking a key on
the request path stays one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from sluicegate.config.base import Duration, Name, Strict
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
    limits: list[Limits] | None = None
    budget: Budget | None = None
    rotated_from: str | None = None  # the id of the key this one replaced


def key_secret_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    value = (os.environ if environ is None else environ).get(KEY_SECRET_ENV, "")
    return value.encode()


def mint() -> tuple[str, str]:
    """A new key and its prefix."""
    key = "sg-" + secrets.token_urlsafe(32)
    return key, key[:PREFIX_LENGTH]


def new_doc(
    consumer: str, asked: NewKey, secret: bytes, now: float, rotated_from: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The plaintext key (shown once) and the document stored for it."""
    key, prefix = mint()
    doc = KeyDoc(
        consumer=consumer,
        prefix=prefix,
        hash=hash_key(key, secret).hex(),
        name=asked.name,
        expires_at=now + asked.expires_in if asked.expires_in is not None else None,
        rules=asked.rules,
        models=asked.models,
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


def key_issues(records: Sequence[Record], consumers: set[str], rules: set[str]) -> list[str]:
    """Problems of stored keys that would make the config invalid (their rules must exist)."""
    issues = []
    for record in records:
        if record.kind != "key" or record.doc.get("revoked_at") is not None:
            continue
        if record.doc.get("consumer") not in consumers:
            continue  # its consumer is gone: the key is dead (deleted along with it)
        for j, rule in enumerate(record.doc.get("rules") or []):
            if rule not in rules:
                issues.append(f"keys/{record.doc['prefix']}.rules[{j}]: unknown rule '{rule}'")
    return issues


def key_entries(
    table: RoutingTable, records: Sequence[Record], now: float | None = None
) -> dict[bytes, ConsumerEntry]:
    """An entry per live key whose consumer exists: the consumer's, narrowed by the key."""
    now = time.time() if now is None else now
    out: dict[bytes, ConsumerEntry] = {}
    for record in records:
        if record.kind != "key":
            continue
        doc = KeyDoc.model_validate(record.doc)
        base = table.consumers.get(doc.consumer)
        if base is None or doc.revoked_at is not None:
            continue
        allowed = narrower(base.rules, doc.rules)
        models = frozenset(doc.models) if doc.models is not None else None
        body = models_body(table.rules, allowed, models)
        limits = base.limits + limits_of(f"key:{record.id}", "key", doc.limits, doc.budget)
        out[bytes.fromhex(doc.hash)] = ConsumerEntry(
            base.name, allowed, body, limits, record.id, doc.prefix, doc.expires_at, models
        )
    return out
