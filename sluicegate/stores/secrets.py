"""Credential secrets at rest: Fernet under ``SLUICEGATE_MASTER_KEY``, and its rotation.

A stored document keeps each secret as ``{"encrypted": "<fernet token>"}``, so
that an encrypted value can never be mistaken for a plaintext one (the Admin API
accepts only strings for secret fields). Other keys of that object (``template``,
the ``${VAR}`` a secret was applied with) are bookkeeping and survive rotation.

Rotating the master key takes two steps: every instance gets the new key as
``SLUICEGATE_MASTER_KEY`` and the old one in ``SLUICEGATE_MASTER_KEY_PREVIOUS``
(read-only: nothing is encrypted with it), then ``rotate_store`` re-encrypts
what the store holds under the new key. After that the old key can go.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluicegate.config.mcp import McpCredentials
from sluicegate.config.model import Credentials
from sluicegate.errors import ConfigError
from sluicegate.stores.base import Change, Record, StaleWrite, Store

# cryptography is imported where a key is used: a gateway without a master key
# (most, and every one without a config store) never loads it.
if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

MASTER_KEY_ENV = "SLUICEGATE_MASTER_KEY"
PREVIOUS_KEYS_ENV = "SLUICEGATE_MASTER_KEY_PREVIOUS"
_KEY_FORM = "must be 32 random bytes in urlsafe base64 (`sluicegate secrets generate-key`)"

# The fields declared with ``secret()`` (repr=False) in the credentials of services,
# upstreams and MCP servers.
SECRET_FIELDS: frozenset[str] = frozenset(
    name
    for model in (Credentials, McpCredentials)
    for name, info in model.model_fields.items()
    if not info.repr
)


class MissingMasterKey(Exception):
    """A secret has to be encrypted or decrypted and no master key is set."""


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("encrypted"), str)


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _fernet(key: str, name: str) -> Fernet:
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        # The variable's name only: a malformed key may still be most of a real one.
        raise ConfigError([f"{name}: {_KEY_FORM}"]) from None


class Vault:
    """Encrypts with the current key; decrypts with it or any previous one."""

    def __init__(self, key: str | None, previous: Sequence[str] = ()) -> None:
        self._current: Fernet | None = _fernet(key, MASTER_KEY_ENV) if key else None
        old = [_fernet(k, f"{PREVIOUS_KEYS_ENV} (key {i + 1})") for i, k in enumerate(previous)]
        if old and self._current is None:
            raise ConfigError(
                [f"{PREVIOUS_KEYS_ENV} is set but {MASTER_KEY_ENV} is not: set the new key too"]
            )
        self._previous = len(old)
        self._any: MultiFernet | None = None
        if self._current is not None:
            from cryptography.fernet import MultiFernet

            self._any = MultiFernet([self._current, *old])

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Vault:
        env = os.environ if env is None else env
        previous = [k.strip() for k in env.get(PREVIOUS_KEYS_ENV, "").split(",") if k.strip()]
        return cls(env.get(MASTER_KEY_ENV), previous)

    @property
    def enabled(self) -> bool:
        return self._current is not None

    def encrypt(self, value: str) -> dict[str, str]:
        if self._current is None:
            raise MissingMasterKey
        return {"encrypted": self._current.encrypt(value.encode()).decode()}

    def _unreadable(self, where: str) -> ConfigError:
        tried = MASTER_KEY_ENV + (f" or {PREVIOUS_KEYS_ENV}" if self._previous else "")
        return ConfigError(
            [f"{where}: cannot decrypt the stored secret with {tried}; is it the right key?"]
        )

    def decrypt(self, value: dict[str, str], where: str) -> str:
        if self._any is None:
            raise ConfigError(
                [f"{where}: the store holds an encrypted secret and {MASTER_KEY_ENV} is not set"]
            )
        from cryptography.fernet import InvalidToken  # loaded with the key

        try:
            return self._any.decrypt(value["encrypted"].encode()).decode()
        except InvalidToken:
            raise self._unreadable(where) from None

    def current(self, value: dict[str, str]) -> bool:
        """Whether the secret is encrypted under the current key (rotation leaves it alone)."""
        if self._current is None:
            return False
        from cryptography.fernet import InvalidToken  # loaded with the key

        try:
            self._current.decrypt(value["encrypted"].encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, value: Any, where: str) -> dict[str, Any] | None:
        """A stored secret re-encrypted under the current key; ``None``: it already is.

        A plaintext string (a store written before encryption) is encrypted too.
        Raises ``ConfigError`` naming ``where`` when no key opens it.
        """
        if self._any is None:
            raise ConfigError([f"{where}: rotating stored secrets needs {MASTER_KEY_ENV}"])
        if isinstance(value, str):
            return self.encrypt(value)
        if not is_encrypted(value) or self.current(value):
            return None
        from cryptography.fernet import InvalidToken  # loaded with the key

        try:
            token = self._any.rotate(value["encrypted"].encode()).decode()
        except InvalidToken:
            raise self._unreadable(where) from None
        return {**value, "encrypted": token}

    def seal(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """Encrypt every plaintext secret of a credentials document."""
        return {
            k: self.encrypt(v) if k in SECRET_FIELDS and isinstance(v, str) else v
            for k, v in credentials.items()
        }

    def open(self, credentials: dict[str, Any], where: str) -> dict[str, Any]:
        """Decrypt every encrypted secret of a credentials document."""
        return {
            k: self.decrypt(v, f"{where}.{k}") if is_encrypted(v) else v
            for k, v in credentials.items()
        }


# -- rotation ---------------------------------------------------------------------


@dataclass(slots=True)
class Rotation:
    """What ``rotate_store`` re-encrypted (or, on a dry run, would)."""

    fields: list[str] = field(default_factory=list)  # ``upstreams/pool.credentials.header_value``
    entities: int = 0
    attempts: int = 0


def _where(record: Record) -> str:
    # Every kind's plural is its name + "s"; ``admin.layers`` imports this module.
    return f"{record.kind}s/{record.name}.credentials"


def rotation_changes(records: Sequence[Record], vault: Vault) -> tuple[list[Change], list[str]]:
    """The updates that put every stored secret under the current key, and the fields."""
    changes: list[Change] = []
    fields: list[str] = []
    for record in records:
        creds = record.doc.get("credentials")
        if not isinstance(creds, dict):
            continue
        resealed: dict[str, Any] = {}
        for name, value in creds.items():
            if is_encrypted(value) or (name in SECRET_FIELDS and isinstance(value, str)):
                where = f"{_where(record)}.{name}"
                new = vault.reseal(value, where)
                if new is not None:
                    resealed[name] = new
                    fields.append(where)
        if resealed:
            doc = {**record.doc, "credentials": {**creds, **resealed}}
            changes.append(
                # The version read: a concurrent write makes the batch stale, not lost.
                Change(
                    "update", record.kind, record.id, record.name, doc, record.tags, record.version
                )
            )
    return changes, fields


async def rotate_store(
    store: Store, vault: Vault, gateway: str, dry_run: bool = False, attempts: int = 5
) -> Rotation:
    """Re-encrypt a gateway's stored secrets under the current key, in one transaction.

    Idempotent: a secret already under the current key is not rewritten, and
    nothing at all is written (no version bump) when none needs it. A write by
    another instance between read and write makes the batch stale; it is then
    planned again from a fresh read. Raises ``ConfigError`` (nothing written)
    when a secret opens with no configured key.
    """
    if not vault.enabled:
        raise ConfigError([f"rotating stored secrets needs {MASTER_KEY_ENV} (the new key)"])
    attempt = 0
    while True:
        attempt += 1
        changes, fields = rotation_changes(await store.entities(gateway), vault)
        rotation = Rotation(fields, len(changes), attempt)
        if not changes or dry_run:
            return rotation
        try:
            await store.write_many(gateway, changes)
        except StaleWrite:
            if attempt >= attempts:
                raise
            continue
        return rotation
