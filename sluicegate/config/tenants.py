"""Several gateways (tenants) in one config: each becomes a config of its own.

The ``gateway:`` section and the top-level entities describe the default
gateway; each item of ``gateways:`` describes another one with its own
upstreams, services, rules and consumers. ``split`` gives every gateway a
complete ``Config`` (the shared settings, its own name, limits and entities),
so that validation, compilation and the Admin API treat them all alike.
"""

from __future__ import annotations

from sluicegate.config.load import Loaded
from sluicegate.config.model import Config, Tenant

_ENTITIES = ("upstreams", "services", "rules", "groups", "consumers", "mcp_servers")


def tenant_config(config: Config, tenant: Tenant) -> Config:
    """The config of one tenant: shared settings from ``config``, the rest its own.

    ``auth`` is never shared: a token made for one gateway, or naming another gateway's
    consumer, must not open this one."""
    update: dict[str, object] = {"name": tenant.name}
    for field in ("limits", "budget"):
        if field in tenant.model_fields_set:
            update[field] = getattr(tenant, field)
    gateway = config.gateway.model_copy(update=update)
    entities = {kind: getattr(tenant, kind) for kind in _ENTITIES}
    return config.model_copy(
        update={"gateway": gateway, "gateways": [], "auth": tenant.auth, **entities}
    )


def split(loaded: Loaded) -> dict[str, Loaded]:
    """Every gateway of the file by name, the default one first."""
    config = loaded.config
    default = config.model_copy(update={"gateways": []})
    out = {config.gateway.name: Loaded(default, loaded.warnings, loaded.source)}
    for tenant in config.gateways:
        out[tenant.name] = Loaded(tenant_config(config, tenant), [], loaded.source)
    return out


def hosts(config: Config) -> dict[str, str]:
    """``Host`` (lower case, no port) → gateway name, for the tenants that list hosts."""
    return {host: tenant.name for tenant in config.gateways for host in tenant.hosts}
