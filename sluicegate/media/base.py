"""The media endpoints and the seam each provider fills for them.

A ``Wire`` says how one provider serves one media endpoint: the request it is sent (built
per attempt, like the chat adapters') and, unless its answers are relayed as they come,
the OpenAI-shaped answer made of the provider's. Wires are pure: no socket, no secret (the
service's credentials sign the request afterwards).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sluicegate.media.multipart import FormFile
from sluicegate.providers.base import Adapter, UpstreamRequest


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    name: str  # the endpoint of audit rows, metrics and traces
    path: str  # OpenAI's path under a service's base URL
    family: str  # images | transcripts | speech | rerank | moderations
    form: bool = False  # a multipart/form-data body, streamed on


ENDPOINTS: dict[str, MediaEndpoint] = {
    "/v1/images/generations": MediaEndpoint("images.generations", "/images/generations", "images"),
    "/v1/images/edits": MediaEndpoint("images.edits", "/images/edits", "images", form=True),
    "/v1/images/variations": MediaEndpoint(
        "images.variations", "/images/variations", "images", form=True
    ),
    "/v1/audio/transcriptions": MediaEndpoint(
        "audio.transcriptions", "/audio/transcriptions", "transcripts", form=True
    ),
    "/v1/audio/translations": MediaEndpoint(
        "audio.translations", "/audio/translations", "transcripts", form=True
    ),
    "/v1/audio/speech": MediaEndpoint("audio.speech", "/audio/speech", "speech"),
    "/v1/rerank": MediaEndpoint("rerank", "/rerank", "rerank"),
    "/v1/moderations": MediaEndpoint("moderations", "/moderations", "moderations"),
}
# Paths clients reach without the /v1 (base_url set to the server's root).
ENDPOINTS.update({path.removeprefix("/v1"): e for path, e in list(ENDPOINTS.items())})
# Rerank servers (Cohere, Jina, vLLM) also take /v2/rerank and /rerank.
ENDPOINTS["/v2/rerank"] = ENDPOINTS["/v1/rerank"]


class Wire:
    """One provider's way of serving one media endpoint."""

    # The answer goes to the client as the provider sends it (its own OpenAI shape); else
    # it is read whole and ``answer`` gives the OpenAI-shaped one.
    relayed: ClassVar[bool] = False

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
        """``body`` is the client's request (a form's plain fields); ``raw`` its JSON bytes
        (empty for a form, whose bytes the caller streams on). ``files``: a form's files,
        read whole, for a wire that is not ``relayed``."""
        raise NotImplementedError

    def answer(
        self, endpoint: MediaEndpoint, data: bytes, body: dict[str, Any], model: str
    ) -> dict[str, Any]:
        raise NotImplementedError

    def copies(self, endpoint: MediaEndpoint, body: dict[str, Any], model: str) -> int:
        """How many times the same request is sent at once, for a provider that makes one
        result a call where the client asked for several; their answers are ``join``-ed."""
        return 1

    def join(self, answers: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError
