"""Where the gateway keeps the files and batches consumers own: the store when there is one
(``stores.objects``), else this process's memory (gone at a restart; one instance only)."""

from __future__ import annotations

from typing import Protocol

from sluicegate.errors import StoreUnavailable
from sluicegate.stores.base import Store, StoreUnreachable
from sluicegate.stores.objects import LIST_LIMIT, OwnedObject


class Owned(Protocol):
    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None: ...

    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]: ...

    async def owned_object(self, id: str) -> OwnedObject | None: ...

    async def delete_object(self, id: str) -> None: ...

    async def claim_object(self, id: str) -> bool: ...


class MemoryOwned:
    def __init__(self) -> None:
        self._rows: dict[str, OwnedObject] = {}

    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None:
        held = self._rows.get(obj.id)
        if held is None:
            self._rows[obj.id] = obj
        elif not only_new:
            held.doc = obj.doc
            held.batch = obj.batch or held.batch

    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]:
        found = [
            o
            for o in self._rows.values()
            if (o.gateway, o.consumer, o.kind) == (gateway, consumer, kind)
        ]
        found.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        return found[:LIST_LIMIT]

    async def owned_object(self, id: str) -> OwnedObject | None:
        return self._rows.get(id)

    async def delete_object(self, id: str) -> None:
        self._rows.pop(id, None)

    async def claim_object(self, id: str) -> bool:
        held = self._rows.get(id)
        if held is None or held.recorded:
            return False
        held.recorded = True
        return True


class StoreOwned:
    """The store's rows; a store that does not answer is a 503 the client can retry."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put_object(self, obj: OwnedObject, only_new: bool = False) -> None:
        try:
            await self.store.put_object(obj, only_new)
        except StoreUnreachable:
            raise _down() from None

    async def owned_objects(self, gateway: str, consumer: str, kind: str) -> list[OwnedObject]:
        try:
            return await self.store.owned_objects(gateway, consumer, kind)
        except StoreUnreachable:
            raise _down() from None

    async def owned_object(self, id: str) -> OwnedObject | None:
        try:
            return await self.store.owned_object(id)
        except StoreUnreachable:
            raise _down() from None

    async def delete_object(self, id: str) -> None:
        try:
            await self.store.delete_object(id)
        except StoreUnreachable:
            raise _down() from None

    async def claim_object(self, id: str) -> bool:
        try:
            return await self.store.claim_object(id)
        except StoreUnreachable:
            raise _down() from None


def _down() -> StoreUnavailable:
    return StoreUnavailable("The store that keeps files and batches does not answer; retry.")
