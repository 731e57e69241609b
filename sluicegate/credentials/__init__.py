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

    @property
    def signs_body(self) -> bool:
        """Whether the signature covers the body (SigV4): a body streamed on untouched
        (``/passthrough``) is then read whole first, within ``gateway.max_body_bytes``."""
        ...

    async def prepare(self, http: Transport) -> None: ...

    def sign(self, request: UpstreamRequest) -> None: ...

    def secrets(self, request: UpstreamRequest) -> list[str]:
        """Every credential value ``request`` carries once signed (and the secrets they
        come from): what must never be shown, even when a provider quotes it back."""
        ...


def build_signer(
    creds: Credentials | None, service: Service | None, where: str, warnings: list[str]
) -> Signer | None:
    """The signer for a service's credentials (``None`` when it has none)."""
    if creds is None:
        return None
    if creds.aws_access_key_id is not None:
        from sluicegate.credentials.aws import AwsSigV4

        return AwsSigV4(
            creds.aws_access_key_id,
            creds.aws_secret_access_key or "",
            creds.aws_session_token,
            creds.aws_region or "us-east-1",
        )
    if creds.azure_client_id is not None:
        from sluicegate.credentials.azure import AzureEntraCredentials

        if not (creds.azure_tenant_id and creds.azure_client_id and creds.azure_client_secret):
            warnings.append(
                f"{where}: azure_tenant_id, azure_client_id or azure_client_secret is empty; "
                "Entra ID will refuse the token request"
            )
        return AzureEntraCredentials.from_credentials(creds)
    if creds.gcp_service_account_json is not None:
        try:
            from sluicegate.credentials.gcp import GoogleServiceAccount
        except ImportError:
            warnings.append(
                f"{where}.gcp_service_account_json: needs google-auth; "
                "install sluicegate[vertex]. Requests to this service will fail"
            )
            return None
        try:
            return GoogleServiceAccount.from_json(creds.gcp_service_account_json)
        except ValueError as exc:
            warnings.append(
                f"{where}.gcp_service_account_json {exc}; requests to this service will fail"
            )
            return None
    from sluicegate.credentials.static import StaticCredentials

    header = (creds.header_name, creds.header_value or "") if creds.header_name else None
    param = (creds.param_name, creds.param_value or "") if creds.param_name else None
    if header is None and param is None:
        return None
    return StaticCredentials(header=header, param=param)
