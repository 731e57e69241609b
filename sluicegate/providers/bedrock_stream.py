"""ConverseStream's binary AWS event stream -> OpenAI chunks.

The framing (prelude, headers, payload, CRCs) is parsed by botocore's sans-IO
``EventStreamBuffer``, which keeps partial frames until they are whole, so any
split of the bytes decodes the same. Each frame is an event (``:event-type``
names it, the payload is JSON), an exception (``:exception-type``) or an error.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from sluicegate.errors import GatewayError, UpstreamError
from sluicegate.providers.bedrock_answers import FINISH_REASONS, error_for, new_id, translate_usage
from sluicegate.schema.chat import ChatMessage, make_chunk, make_usage_chunk


class ConverseStream:
    """One ConverseStream answer; ``finished`` once both messageStop and metadata came."""

    def __init__(self, model: str) -> None:
        self.finished = False
        self.error: GatewayError | None = None
        self.id = new_id()
        self.model = model
        self.created = int(time.time())
        self._buffer = EventStreamBuffer()
        self._stopped = False
        self._metered = False
        self._tools: dict[int, int] = {}  # contentBlockIndex -> tool_calls index
        self._tool_has_input: dict[int, bool] = {}

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer.add_data(data)
        out: list[dict[str, Any]] = []
        try:
            for message in self._buffer:
                if self.error is not None:
                    break
                frame = message.to_response_dict()
                out.extend(self._on_frame(frame["headers"], frame["body"]))
        except GatewayError as exc:  # an exception frame: keep what came before it
            self.error = exc
        except (ParserError, struct.error, KeyError, IndexError, TypeError, AttributeError) as exc:
            # A frame that is not AWS event-stream framing, or an event not as documented.
            raise ValueError(f"unreadable event-stream frame ({type(exc).__name__})") from None
        return out

    def _chunk(self, delta: ChatMessage, finish: str | None = None) -> dict[str, Any]:
        return dict(make_chunk(self.id, self.model, self.created, delta, finish))

    def _on_frame(self, headers: dict[str, Any], payload: bytes) -> list[dict[str, Any]]:
        kind = headers.get(":message-type")
        if kind == "exception":
            data = orjson.loads(payload) if payload else {}
            message = data.get("message") or data.get("Message") or "error in stream"
            raise error_for(str(headers.get(":exception-type", "")), str(message), 500, {})
        if kind == "error":
            code = headers.get(":error-code", "error")
            raise UpstreamError(f"Bedrock {code}: {headers.get(':error-message', '')}")
        if kind != "event":
            return []
        event = orjson.loads(payload) if payload else {}
        if not isinstance(event, dict):
            raise TypeError("event payload is not an object")
        return self._on_event(str(headers.get(":event-type", "")), event)

    def _on_event(self, name: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if name == "contentBlockDelta":
            return self._on_delta(int(event.get("contentBlockIndex", 0)), event["delta"])
        if name == "contentBlockStart":
            use = (event.get("start") or {}).get("toolUse")
            if use is None:
                return []
            block = int(event.get("contentBlockIndex", 0))
            index = len(self._tools)
            self._tools[block] = index
            self._tool_has_input[index] = False
            call = {
                "index": index,
                "id": str(use.get("toolUseId", "")),
                "type": "function",
                "function": {"name": str(use.get("name", "")), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if name == "contentBlockStop":
            index = self._tools.get(int(event.get("contentBlockIndex", 0)), -1)
            if self._tool_has_input.get(index) is False:
                # A tool called without arguments streams no input; the whole
                # answer says {} and the stream must say the same.
                self._tool_has_input[index] = True
                call = {"index": index, "function": {"arguments": "{}"}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if name == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if name == "messageStop":
            self._stopped = True
            self.finished = self._metered
            reason = FINISH_REASONS.get(str(event.get("stopReason") or ""), "stop")
            return [self._chunk({}, reason)]
        if name == "metadata":
            self._metered = True
            self.finished = self._stopped
            usage = translate_usage(event.get("usage") or {})
            return [dict(make_usage_chunk(self.id, self.model, self.created, usage))]
        return []  # event types added later

    def _on_delta(self, block: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if "text" in delta:
            return [self._chunk({"content": str(delta["text"])})]
        if "toolUse" in delta:
            index = self._tools.get(block)
            if index is None:
                return []
            arguments = str(delta["toolUse"].get("input", ""))
            if arguments:
                self._tool_has_input[index] = True
            call = {"index": index, "function": {"arguments": arguments}}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
            return [self._chunk({"reasoning_content": reasoning["text"]})]
        return []
