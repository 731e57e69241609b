"""The ids clients hold for files and batches: the provider's id, wrapped and signed.

An id names the gateway, the service that holds the object, the consumer that owns it and
the provider's own id, under an HMAC-SHA256 (128 bits kept) keyed by a secret of the server.
So the gateway knows where an object lives without a lookup, and a client can neither point
an id at another service or consumer nor make one up: any change is refused as an unknown
id. The same object always gets the same id (nothing random goes in), so an output file
named again by a later retrieve is the same file.

    file-sg1<payload>.<mac>    batch_sg1<payload>.<mac>    msgbatch_sg1<payload>.<mac>

``payload`` is the URL-safe base64 of a JSON array; ``mac`` covers the kind's prefix too, so
a batch's id is no file id. The key is derived from ``SLUICEGATE_KEY_SECRET`` (else
``SLUICEGATE_MASTER_KEY``), so every instance agrees; with neither, a random one of this run
of the server, shared by its workers (logged once): ids then hold until it stops.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass

import orjson

from sluicegate.workers import run_secret

log = logging.getLogger("sluicegate")

PREFIXES = {"file": "file-", "batch": "batch_", "message_batch": "msgbatch_"}
_VERSION = "sg1"
_MAC_BYTES = 16
_MAX_ID = 2048  # longer is no id of ours (and is never decoded)


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str  # file | batch | message_batch
    gateway: str
    service: str
    consumer: str
    upstream: str  # the provider's own id


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ObjectIds:
    def __init__(self, key_secret: bytes = b"", master_key: str | None = None) -> None:
        material = key_secret or (master_key or "").encode()
        self.ephemeral = not material
        if self.ephemeral:  # the workers of one serve share theirs
            material = run_secret() or os.urandom(32)
        self._key = hmac.new(material, b"sluicegate-object-ids", hashlib.sha256).digest()
        self._warned = False

    @classmethod
    def from_env(cls, key_secret: bytes) -> ObjectIds:
        from sluicegate.stores.secrets import MASTER_KEY_ENV

        return cls(key_secret, os.environ.get(MASTER_KEY_ENV))

    def _mac(self, prefix: str, body: str) -> str:
        digest = hmac.new(self._key, (prefix + body).encode(), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def mint(self, ref: ObjectRef) -> str:
        if self.ephemeral and not self._warned:
            self._warned = True
            log.warning(
                "file and batch ids are signed with a key of this run only: they stop "
                "working at a restart and on other instances; set SLUICEGATE_KEY_SECRET"
            )
        prefix = PREFIXES[ref.kind]
        payload = orjson.dumps([ref.gateway, ref.service, ref.consumer, ref.upstream])
        body = _VERSION + _b64(payload)
        return f"{prefix}{body}.{self._mac(prefix, body)}"

    def read(self, kind: str, value: str) -> ObjectRef | None:
        """The object an id names, or None for anything this gateway did not sign."""
        prefix = PREFIXES[kind]
        if len(value) > _MAX_ID or not value.startswith(prefix + _VERSION):
            return None
        body, dot, mac = value[len(prefix) :].rpartition(".")
        if not dot or not hmac.compare_digest(mac.encode(), self._mac(prefix, body).encode()):
            return None
        try:
            parts = orjson.loads(_unb64(body[len(_VERSION) :]))
        except (binascii.Error, ValueError):
            return None
        if not (
            isinstance(parts, list) and len(parts) == 4 and all(isinstance(p, str) for p in parts)
        ):
            return None
        return ObjectRef(kind, *parts)
