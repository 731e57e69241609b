"""Credential secrets at rest: Fernet with ``SLUICEGATE_MASTER_KEY``.

A stored document keeps each secret as ``{"encrypted": "<fernet token>"}``, so
that an encrypted value can never be mistaken for a plaintext one (the Admin API
accepts only strings for secret fields).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from sluicegate.config.model import Credentials
from sluicegate.errors import ConfigError

MASTER_KEY_ENV = "SLUICEGATE_MASTER_KEY"

# The fields declared with ``_secret()`` (repr=False) in the config model.
SECRET_FIELDS: frozenset[str] = frozenset(
    name for name, info in Credentials.model_fields.items() if not info.repr
)


class MissingMasterKey(Exception):
    """A secret has to be encrypted or decrypted and no master key is set."""


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("encrypted"), str)


class Vault:
    def __init__(self, key: str | None) -> None:
        self._fernet: Fernet | None = None
        if key:
            try:
                self._fernet = Fernet(key.encode())
            except (ValueError, TypeError):
                raise ConfigError(
                    [
                        f"{MASTER_KEY_ENV}: must be 32 random bytes in urlsafe base64 "
                        "(python -c 'from cryptography.fernet import Fernet; "
                        "print(Fernet.generate_key().decode())')"
                    ]
                ) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Vault:
        return cls((os.environ if env is None else env).get(MASTER_KEY_ENV))

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def encrypt(self, value: str) -> dict[str, str]:
        if self._fernet is None:
            raise MissingMasterKey
        return {"encrypted": self._fernet.encrypt(value.encode()).decode()}

    def decrypt(self, value: dict[str, str], where: str) -> str:
        if self._fernet is None:
            raise ConfigError(
                [f"{where}: the store holds an encrypted secret and {MASTER_KEY_ENV} is not set"]
            )
        try:
            return self._fernet.decrypt(value["encrypted"].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                [f"{where}: cannot decrypt the stored secret; is {MASTER_KEY_ENV} the right key?"]
            ) from None

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
