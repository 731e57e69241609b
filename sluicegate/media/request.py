"""A media request as the gateway reads it: a JSON body, or a form's head and the rest of
its bytes still on their way (``multipart``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from sluicegate.asgi import Receive, read_body
from sluicegate.dialects.openai import parse_json_object
from sluicegate.errors import InvalidRequest
from sluicegate.media.base import MediaEndpoint
from sluicegate.media.multipart import FormHead, FormTail, boundary_of, read_form
from sluicegate.proxy.upload import Upload
from sluicegate.routing.table import RoutingTable

# OpenAI's default when a moderation request names no model.
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


@dataclass(slots=True)
class MediaRequest:
    endpoint: MediaEndpoint
    body: dict[str, Any]  # the JSON body, or a form's plain fields
    raw: bytes  # the JSON body's bytes; empty for a form
    model: str
    head: FormHead | None = None
    rest: AsyncGenerator[bytes, None] | None = None  # the form's bytes after its head, as they come
    upload: Upload | None = None
    content_type: str = ""
    declared: int | None = None  # the client's Content-Length
    sent: bool = False  # a form's bytes began to go upstream: it cannot be sent again
    tail: bytes | None = None  # the rest of the form, once read whole (``read_whole``)
    form: FormHead | None = None  # the whole form, parsed, for a translated provider

    @property
    def stream(self) -> bool:
        return self.body.get("stream") in (True, "true", "True")

    def form_head(self, model: str) -> bytes:
        """The form's head as it goes upstream: ``model``, and the plain fields as the
        guardrails left them (``body``)."""
        assert self.head is not None
        return self.head.head({**self.body, "model": model})

    def form_length(self, head: bytes) -> int | None:
        """The Content-Length of the form sent with ``head``; None: sent chunked."""
        if self.declared is None or self.head is None:
            return None
        return self.declared - len(self.head.buffer) + len(head)

    async def form_bytes(self, head: bytes) -> AsyncGenerator[bytes, None]:
        """The form as it goes upstream: ``head``, then the rest as it arrives from the
        client, never held whole (unless a translated provider had it read whole before)."""
        yield head
        if self.tail is not None:
            yield self.tail
            return
        assert self.rest is not None
        self.sent = True
        async for chunk in self.rest:
            yield chunk

    async def read_whole(self) -> FormHead:
        """The whole form, parsed: a provider that takes its files inside JSON needs them.
        Read within ``max_body_bytes``; it can then be sent again, to any provider."""
        if self.form is None:
            assert self.head is not None and self.rest is not None
            if self.sent:
                raise InvalidRequest("The upload was sent already and cannot be read again.")
            self.tail = b"".join([chunk async for chunk in self.rest])
            boundary = self.head.delimiter.removeprefix(b"--")
            self.form = read_form(boundary, bytes(self.head.buffer) + self.tail)
        return self.form


async def read_request(
    receive: Receive,
    headers: list[tuple[bytes, bytes]],
    declared: int | None,
    table: RoutingTable,
    endpoint: MediaEndpoint,
) -> MediaRequest:
    if endpoint.form:
        return await _read_form(receive, headers, declared, table, endpoint)
    raw = await read_body(receive, table.max_body_bytes, declared, table.body_timeout)
    body = parse_json_object(raw)
    model = body.get("model")
    if model is None and endpoint.family == "moderations":
        model = DEFAULT_MODERATION_MODEL
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required.", param="model")
    return MediaRequest(endpoint, body, raw, model)


async def _read_form(
    receive: Receive,
    headers: list[tuple[bytes, bytes]],
    declared: int | None,
    table: RoutingTable,
    endpoint: MediaEndpoint,
) -> MediaRequest:
    content_type = next((v for k, v in headers if k == b"content-type"), b"")
    head = FormHead(boundary_of(content_type))
    upload = Upload(receive, table.max_body_bytes, declared, table.body_timeout)
    parts = upload.parts()
    async for chunk in parts:
        if head.feed(chunk):
            break  # the rest stays in the client's connection until a provider reads it
    model = head.model
    if not model:
        await parts.aclose()
        raise InvalidRequest("model is required.", param="model")
    tail = FormTail(head.delimiter)
    try:
        tail.feed(head.unread)
    except InvalidRequest:
        await parts.aclose()
        raise
    upload.check = tail.feed
    request = MediaRequest(endpoint, dict(head.fields), b"", model, head)
    request.rest, request.upload = parts, upload
    request.content_type, request.declared = content_type.decode("latin-1"), declared
    return request
