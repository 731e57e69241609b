"""Gateways (tenants) as the Admin API shows and takes them.

The default gateway (the file's ``gateway:`` section) and the file's
``gateways:`` are read-only here; gateways created through the API live in the
store as a record of kind ``gateway`` inside their own namespace, next to their
entities. A gateway holds only how requests find it (``hosts``), a description
and tags; its upstreams, services, rules and consumers are addressed under
``/admin/gateways/{name}/…``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sluicegate.admin.entities import Entity, iso_time, validated
from sluicegate.config.base import Name, Strict
from sluicegate.config.ids import entity_id
from sluicegate.config.load import Loaded
from sluicegate.config.model import HostName
from sluicegate.config.tenants import hosts
from sluicegate.errors import Conflict
from sluicegate.stores.base import Record


class GatewayDoc(Strict):
    name: Name
    hosts: list[HostName] = Field(default_factory=list)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


def file_gateways(file: Loaded) -> list[Entity]:
    """The default gateway, then the file's ``gateways:``."""
    config = file.config
    name = config.gateway.name
    default: dict[str, Any] = {"name": name, "hosts": [], "tags": []}
    out = [Entity("gateway", entity_id("gateway", name), name, default, None)]
    for tenant in config.gateways:
        doc = tenant.model_dump(mode="json", include={"name", "hosts", "description", "tags"})
        out.append(Entity("gateway", entity_id("gateway", tenant.name), tenant.name, doc, None))
    return out


def all_gateways(file: Loaded, records: Sequence[Record]) -> list[Entity]:
    found = file_gateways(file)
    known = {e.name for e in found}
    found += [Entity("gateway", r.id, r.name, r.doc, r) for r in records if r.name not in known]
    return found


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The stored document of a gateway: hosts and description (name and tags are columns)."""
    return validated(GatewayDoc, body).model_dump(mode="json", exclude_none=True)


def check_hosts(doc: dict[str, Any], name: str, file: Loaded, others: Sequence[Entity]) -> None:
    """409 when a host already selects another gateway."""
    taken = hosts(file.config)
    for other in others:
        if other.record is not None and other.name != name:
            taken.update(dict.fromkeys(other.doc.get("hosts") or [], other.name))
    for host in doc.get("hosts") or []:
        owner = taken.get(host)
        if owner is not None and owner != name:
            raise Conflict(
                f"The host '{host}' already selects gateway '{owner}'.", code="host_taken"
            )


def present_gateway(entity: Entity, default: str) -> dict[str, Any]:
    doc = GatewayDoc.model_validate({**entity.doc, "name": entity.name, "tags": entity.tags})
    record = entity.record
    return {
        "id": entity.id,
        **doc.model_dump(mode="json"),
        "default": entity.name == default,
        "source": entity.source,
        "created_at": iso_time(record.created_at if record else None),
        "updated_at": iso_time(record.updated_at if record else None),
    }
