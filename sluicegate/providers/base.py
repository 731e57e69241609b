"""The adapter seam: canonical (OpenAI) requests in, a provider's wire format out, and back.

Adapters are pure: they build an ``UpstreamRequest`` and read bytes they are
given; they never open a socket and never see a secret (credentials sign the
request after the adapter built it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import orjson

from sluicegate.errors import GatewayError, UpstreamStatusError
from sluicegate.schema.sse import EventSplitter, parse_event

if TYPE_CHECKING:
    from sluicegate.config.model import Service

# Endpoint names the data plane serves; adapters append their own URL for each.
Endpoint = str


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False
    params: dict[str, str] = field(default_factory=dict)


class StreamDecoder(Protocol):
    """Turns a provider's streamed bytes into canonical chunk dicts.

    When the provider reports an error in its stream, ``feed`` returns the
    chunks decoded before it and sets ``error``; ``finished`` tells whether the
    provider ended the stream properly. ``feed`` raises ``ValueError`` for
    bytes that are not the documented format.
    """

    finished: bool
    error: GatewayError | None

    def feed(self, data: bytes) -> list[dict[str, Any]]: ...


class EventEdits(Protocol):
    """What a pass-through relay changes in a provider's stream on its way to the client:
    whole events in (``EventSplitter.feed_joined``), whole events out, most untouched."""

    def feed(self, payload: bytes) -> bytes: ...


class SSEDecoder:
    """A ``StreamDecoder`` for providers that stream Server-Sent Events."""

    def __init__(self) -> None:
        self.finished = False
        self.error: GatewayError | None = None
        self._splitter = EventSplitter()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for raw in self._splitter.feed(data):
            name, payload = parse_event(raw)
            if not payload or self.error is not None:
                continue
            try:
                out.extend(self.on_event(name, payload))
            except GatewayError as exc:  # the provider's own error event
                self.error = exc
            except (KeyError, TypeError, AttributeError, IndexError) as exc:
                # An event that does not have the documented shape.
                raise ValueError(f"unexpected stream event ({type(exc).__name__})") from None
        return out

    def on_event(self, name: str | None, data: bytes) -> list[dict[str, Any]]:
        raise NotImplementedError


class Adapter:
    """Base class of provider adapters: one per provider, pure translation.

    The provider's base URL comes from the service (or ``catalog``); the
    adapter appends the endpoint's own path.
    """

    name: ClassVar[str] = "base"
    # The client dialect whose requests and answers this provider takes and
    # gives as they are; for such clients, bytes pass through untouched.
    passthrough_dialect: ClassVar[str | None] = None
    endpoints: frozenset[str] = frozenset({"chat"})  # per class, or per service (__init__)

    def speaks(self, dialect: str) -> bool:
        """Whether this provider takes and gives a client of ``dialect`` in the client's
        own wire format: its bytes then pass through."""
        return dialect == self.passthrough_dialect

    @classmethod
    def for_service(cls, service: Service) -> Adapter:
        """The adapter for one service; override to read service fields
        (``api_version``, ``project``, ``location``) once, at compile time."""
        return cls()

    def build(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        base_url: str,
    ) -> UpstreamRequest:
        """The provider request for canonical ``body`` with ``model``.

        ``raw`` is non-empty only when the client spoke this provider's own
        dialect: it is then the exact body to send (model already set).
        """
        raise NotImplementedError

    def forwarded(self, headers: dict[str, str]) -> dict[str, str]:
        """Which of the client's own headers (``Dialect.forward_headers``, sent by a client
        of this provider's dialect) go on to the provider; override to hold some back."""
        return headers

    # Whether ``check_native`` must see a pass-through request's body (it is then read whole,
    # within gateway.max_body_bytes, before it goes on untouched).
    reads_native_bodies: bool = False

    def check_native(self, path: str, body: bytes | None) -> None:
        """Refuse (``InvalidRequest``) a pass-through request to ``path`` (under the service's
        base URL) that this service must not send for a client; ``body`` is given when
        ``reads_native_bodies``. The gateway's own requests are held to the same bounds in
        ``build``: a native request may not reach what a modelled one may not."""

    def decode(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The provider's whole answer as a canonical (OpenAI) response.

        ``model`` is the model asked for and ``request`` the canonical request,
        for providers whose answers leave out what the client needs back (the
        model name, the embeddings encoding).
        """
        raise NotImplementedError

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        """A decoder of the provider's stream into canonical chunks."""
        raise NotImplementedError

    def passthrough_edits(self, endpoint: Endpoint, body: dict[str, Any]) -> EventEdits | None:
        """What a stream relayed to a client of this provider's own dialect needs changed
        (``body`` is the client's request); None: nothing, its bytes go on untouched."""
        return None

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        """Translate a provider's own 4xx answer into the gateway's error."""
        message, error_type, code, param = _generic_error_fields(body)
        keep = {}
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            keep["retry-after"] = retry_after
        return UpstreamStatusError(
            status,
            message or f"the provider answered {status}",
            error_type=error_type,
            code=code,
            param=param,
            headers=keep,
        )


def _generic_error_fields(body: bytes) -> tuple[str | None, str | None, str | None, str | None]:
    """message, type, code and param from the error bodies most providers send."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body[:500].decode("utf-8", "replace").strip()
        return (text or None), None, None, None
    if not isinstance(data, dict):
        return None, None, None, None
    err = data.get("error", data)
    if isinstance(err, str):
        return err, None, None, None
    if not isinstance(err, dict):
        return None, None, None, None

    def field(key: str) -> str | None:
        value = err.get(key)
        return str(value) if value is not None else None

    return field("message"), field("type"), field("code"), field("param")
