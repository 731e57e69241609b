"""What a client dialect provides to the request path.

A dialect parses its API's request into the canonical (OpenAI chat) form once,
and writes canonical answers and chunks back in its API's shape. When the
chosen provider speaks the same dialect (``Adapter.speaks``),
the request path skips both translations and relays bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sluicegate.errors import GatewayError


@dataclass(slots=True)
class Parsed:
    """A request read once: the canonical body and, for pass-through, the native one."""

    canonical: dict[str, Any]
    model: str
    native: dict[str, Any]
    # What a provider of the client's own dialect is sent when it is not the client's body
    # (a Responses follow-up, sent as the whole conversation); None: the body as it came.
    wire: dict[str, Any] | None = None


class StreamEncoder(Protocol):
    def encode(self, chunks: list[dict[str, Any]]) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class Dialect(Protocol):
    name: str
    forward_headers: tuple[bytes, ...]  # client headers a same-dialect provider should see
    # The provider endpoint a same-dialect provider serves the gateway's endpoint at, where
    # it differs (a Responses client's chat is OpenAI's own Responses API).
    native_endpoints: Mapping[str, str]

    def parse(self, endpoint: str, raw: bytes) -> Parsed: ...

    def encode_response(self, endpoint: str, canonical: dict[str, Any]) -> bytes: ...

    def stream_encoder(self, canonical: dict[str, Any], model: str) -> StreamEncoder: ...

    def stream_done(self, event: bytes) -> bool:
        """Whether a relayed native event is the stream's last."""
        ...

    def error_event(self, error: GatewayError) -> bytes: ...
