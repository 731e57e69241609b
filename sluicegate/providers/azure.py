"""Azure OpenAI: OpenAI's wire format behind Azure's URLs.

Bodies, answers and streams are OpenAI's own, so everything but the URL is
the OpenAI adapter's. Two URL styles, chosen by the service's ``api_version``:

    deployments (a dated version, the default)
        {base}/deployments/{deployment}/chat/completions?api-version=2024-10-21
        the deployment is the target model name
    v1 (``api_version: v1``)
        {base}/v1/chat/completions, the deployment named by ``model`` in the body

``base`` is ``https://<resource>.openai.azure.com/openai`` by default. The key
goes in an ``api-key`` header (static credentials), or an Entra ID token is
sent as a bearer (``credentials/azure.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from sluicegate.errors import GatewayError, UpstreamStatusError
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.openai import RESPONSES_PATHS, OpenAIAdapter
from sluicegate.providers.paths import refuse

if TYPE_CHECKING:
    from sluicegate.config.model import Service

# The latest generally available dated version of the data-plane API.
DEFAULT_API_VERSION = "2024-10-21"
V1 = "v1"
# The first dated version that takes stream_options (older ones refuse the field).
_STREAM_OPTIONS_SINCE = "2024-09-01"

# Azure's rule for deployment names; checking it also keeps a client's model
# name from reaching another path of the resource ("..", "/", "?"): stricter
# than providers/paths.py, so the name goes into the URL as it is.
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class AzureAdapter(OpenAIAdapter):
    name: ClassVar[str] = "azure"

    def __init__(self, api_version: str = DEFAULT_API_VERSION, api: str = "chat") -> None:
        super().__init__("azure", api)
        self.api_version = api_version
        # Versions that refuse stream_options are sent none; their streams are then counted.
        self.asks_usage = api_version == V1 or api_version[:10] >= _STREAM_OPTIONS_SINCE

    @classmethod
    def for_service(cls, service: Service) -> AzureAdapter:
        return cls(service.api_version or DEFAULT_API_VERSION, service.api)

    def url(self, endpoint: Endpoint, model: str, base_url: str) -> str:
        if endpoint in RESPONSES_PATHS and self.api_version != V1:
            # Not per deployment: the model is in the body.
            version = quote(self.api_version, safe="")
            return f"{base_url}{RESPONSES_PATHS[endpoint]}?api-version={version}"
        return self.url_of(self.path(endpoint), model, base_url)

    def url_of(self, path: str, model: str, base_url: str) -> str:
        """The URL of OpenAI's ``path`` (``/chat/completions``, ``/images/generations``) for
        deployment ``model``."""
        if self.api_version == V1:
            # A service whose path already ends in /v1 is taken as it is.
            base = base_url if base_url.endswith("/v1") else base_url + "/v1"
            return base + path
        if not _DEPLOYMENT.match(model):
            why = "a deployment name holds letters, digits, '.', '_' and '-' only"
            raise refuse(model, self.name, why)
        version = quote(self.api_version, safe="")
        return f"{base_url}/deployments/{model}{path}?api-version={version}"

    def build(
        self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, model: str, base_url: str
    ) -> UpstreamRequest:
        request = super().build(endpoint, body, raw, model, base_url)
        request.url = self.url(self.wire(endpoint), model, base_url)
        return request

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        # Azure's bodies are OpenAI's ({"error": {code, message, param}}), with
        # ``code: content_filter`` for a filtered prompt, kept as it is.
        error = super().error(status, headers, body)
        if isinstance(error, UpstreamStatusError) and status == 429 and _numeric(error.code):
            error.code = "rate_limit_exceeded"  # Azure says "429"
        return error


def _numeric(code: str | None) -> bool:
    return code is None or code.isdigit()
