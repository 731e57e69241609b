"""Credentials sign an ``UpstreamRequest`` after the adapter built it.

Adapters never see a secret; a signer adds it at the last moment. Signers
that exchange a secret for a short-lived token (Entra ID, Google service
accounts) set ``needs_prepare`` and fetch or refresh it in ``prepare``,
which the request path awaits before signing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sluicegate.config.model import Credentials, Service
from sluicegate.providers.base import UpstreamRequest

if TYPE_CHECKING:
    from sluicegate.proxy.upstream import Transport


class Signer(Protocol):
    @property
    def needs_prepare(self) -> bool: ...

    async def prepare(self, http: Transport) -> None: ...

    def sign(self, request: UpstreamRequest) -> None: ...


def build_signer(
    creds: Credentials | None, service: Service, where: str, warnings: list[str]
) -> Signer | None:
    """The signer for a service's credentials (``None`` when it has none)."""
    if creds is None:
        return None
    if creds.aws_access_key_id is not None:
        warnings.append(f"{where}: AWS SigV4 credentials are not supported yet")
        return None
    if creds.azure_client_id is not None:
        warnings.append(f"{where}: Azure Entra ID credentials are not supported yet")
        return None
    if creds.gcp_service_account_json is not None:
        warnings.append(f"{where}: Google service account credentials are not supported yet")
        return None
    from sluicegate.credentials.static import StaticCredentials

    header = (creds.header_name, creds.header_value or "") if creds.header_name else None
    param = (creds.param_name, creds.param_value or "") if creds.param_name else None
    if header is None and param is None:
        return None
    return StaticCredentials(header=header, param=param)
