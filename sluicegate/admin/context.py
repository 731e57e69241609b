"""What the Admin API's endpoint groups (gateways, keys, logs) need of the API they serve in.

``AdminApi`` provides these steps; the groups are handed the API and know it only by this
protocol, so that their modules never import the module that imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.requests import Request

    from sluicegate.admin.entities import Entity
    from sluicegate.admin.layers import Built
    from sluicegate.runtime import Runtime
    from sluicegate.stores.base import Record, Store


class AdminSteps(Protocol):
    runtime: Runtime

    def gw(self, request: Request) -> str:
        """The gateway a request is about: the path's ``{gw}``, else the default one."""
        ...

    async def records(self, gw: str) -> list[Record]: ...

    def everything(self, gw: str, records: list[Record]) -> dict[str, list[Entity]]: ...

    def find(self, items: list[Entity], kind: str, ref: str) -> Entity: ...

    def store(self) -> Store:
        """The store, or 409 for a gateway whose entities come from its file only."""
        ...

    def writable(self, entity: Entity, request: Request) -> None: ...

    async def body(self, request: Request) -> dict[str, Any]: ...

    def build(self, gw: str, records: list[Record], kind: str, id: str) -> Built: ...
