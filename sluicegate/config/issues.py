"""What did not make it into the running config, entity by entity.

The running config is the file's entities, then the store's (``admin.layers``). A
store entity that does not fit (its name is the file's, it names something that is
gone, it would never match) never stops a start or a reload: it is left out, or
runs as it is, and each such problem is kept as an ``EntityIssue`` beside the
routing table, logged once and shown by ``GET /admin/health``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EntityIssue:
    kind: str  # upstream, service, rule, group, consumer, or key (a minted key)
    name: str  # a minted key's prefix
    id: str
    source: str  # "file" or "store"
    path: str  # inside the entity (``targets[0].service``); "" for the entity as a whole
    message: str
    left_out: bool  # not in the running config; False: it runs, but see ``message``

    def line(self) -> str:
        """``store rule 'side': targets[0].service: unknown service 'extra'`` (no secret:
        messages name fields and entities, never values)."""
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{self.source} {self.kind} '{self.name}': {what}"

    def shown(self) -> dict[str, Any]:
        return asdict(self)
