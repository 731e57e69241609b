"""Where a service's Realtime API lives, and the handshake the gateway sends it.

    openai (and OpenAI-compatible servers)   {base}/realtime?model=<model>   (base: …/v1)
    azure, a dated api_version               {base}/realtime?api-version=…&deployment=<model>
    azure, api_version v1                    {base}/v1/realtime?model=<model>

The scheme is the service's, as ``ws`` or ``wss``. The service's headers and credentials
sign the handshake as they sign any request (a key header or parameter, an Entra ID token).
"""

from __future__ import annotations

from urllib.parse import quote

from yarl import URL

from sluicegate.errors import InvalidRequest
from sluicegate.providers.azure import V1, AzureAdapter
from sluicegate.providers.base import UpstreamRequest
from sluicegate.routing.table import CompiledService


def handshake(service: CompiledService, target_url: str, model: str) -> UpstreamRequest:
    """The unsigned request of a session's upstream handshake (an http(s) URL)."""
    adapter = service.adapter
    base = target_url + service.path
    name = quote(model, safe="")
    if isinstance(adapter, AzureAdapter):
        if adapter.api_version == V1:
            url = f"{base}/v1/realtime?model={name}"
        else:
            version = quote(adapter.api_version, safe="")
            url = f"{base}/realtime?api-version={version}&deployment={name}"
    elif adapter is not None and adapter.passthrough_dialect == "openai" and not service.transport:
        url = f"{base}/realtime?model={name}"
    else:
        raise InvalidRequest(
            f"Service '{service.name}' (provider '{service.provider}') does not serve "
            "/v1/realtime.",
            param="model",
            code="unsupported_endpoint",
        )
    return UpstreamRequest("GET", url, dict(service.headers), b"")


def socket_url(request: UpstreamRequest) -> str:
    """The signed request's URL as a WebSocket URL, its query parameters added."""
    url = URL(request.url)
    if request.params:
        url = url.extend_query(request.params)
    return str(url.with_scheme("wss" if url.scheme == "https" else "ws"))
