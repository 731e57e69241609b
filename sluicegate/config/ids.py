"""Stable ids for entities that come from the YAML file (the store mints its own)."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d3c1e-1a7e-4d52-9d0e-5b1a9c6f2a10")


def entity_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))
