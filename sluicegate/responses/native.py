"""OpenAI's own Responses answers (OpenAI and Azure) on their way to the client.

Their bytes pass through but for what makes the response the gateway's: its ``id``
(OpenAI's would name nothing here) and the client's ``previous_response_id`` (OpenAI
was sent the whole conversation instead). Only the lifecycle events of a stream hold
these (``response.created``, ``.in_progress``, ``.completed``, …); the others, each
delta included, are copied as they are. The final response is handed to the dialect,
to be kept like a translated one.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from sluicegate.dialects.responses import ResponsesDialect
from sluicegate.schema.sse import edit_marked, encode_event, parse_event

_LIFECYCLE = re.compile(
    rb"^event: ?response\.(?:created|queued|in_progress|completed|incomplete|failed)\r?$", re.M
)
_SEQUENCE = re.compile(rb'"sequence_number":\s*(\d+)')
_FINAL = ("response.completed", "response.incomplete")


class NativeAnswer:
    def __init__(self, dialect: ResponsesDialect) -> None:
        self.dialect = dialect

    def _own(self, response: dict[str, Any]) -> None:
        response["id"] = self.dialect.id
        response["previous_response_id"] = self.dialect.body.get("previous_response_id")

    def whole(self, body: bytes) -> bytes:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(document, dict) or document.get("object") != "response":
            return body
        self._own(document)
        if document.get("status") in ("completed", "incomplete"):
            self.dialect.final = document
        return orjson.dumps(document)

    def events(self, payload: bytes) -> bytes:
        numbers = _SEQUENCE.findall(payload[-400:]) or _SEQUENCE.findall(payload)
        if numbers:  # an error event the gateway adds continues the count
            self.dialect.sequence = int(numbers[-1]) + 1
        return edit_marked(payload, _LIFECYCLE, self._event)

    def _event(self, raw: bytes) -> bytes:
        name, data = parse_event(raw)
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        response = event.get("response") if isinstance(event, dict) else None
        if name is None or not isinstance(response, dict):
            return raw
        self._own(response)
        if name in _FINAL:
            self.dialect.final = response
        return encode_event(name, event)
