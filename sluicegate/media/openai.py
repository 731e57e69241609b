"""OpenAI's own media endpoints, on OpenAI, Azure OpenAI and OpenAI-compatible servers:
the client's request goes on as it came (the model renamed when a rule says so), the answer
comes back as the provider sends it, audio and event streams included.

Azure puts the deployment in the path (``{base}/deployments/{model}/images/generations
?api-version=…``) unless its ``api_version`` is ``v1`` (``{base}/v1/images/generations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from sluicegate.media.base import MediaEndpoint, Wire
from sluicegate.media.multipart import FormFile
from sluicegate.providers.azure import AzureAdapter
from sluicegate.providers.base import Adapter, UpstreamRequest


class OpenAIWire(Wire):
    relayed: ClassVar[bool] = True

    def request(
        self,
        adapter: Adapter,
        endpoint: MediaEndpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
        files: Sequence[FormFile] = (),
    ) -> UpstreamRequest:
        if isinstance(adapter, AzureAdapter):
            url = adapter.url_of(endpoint.path, model, base_url)
        else:
            url = base_url + endpoint.path
        data = b""
        headers: dict[str, str] = {}
        if not endpoint.form:
            data = raw if body.get("model") == model else orjson.dumps({**body, "model": model})
            headers["content-type"] = "application/json"
        return UpstreamRequest("POST", url, headers, data)
