"""A sans-IO Server-Sent Events codec.

``EventSplitter`` cuts a byte stream into whole events without decoding them,
so pass-through streams are relayed event by event (never half an event) at
the cost of one ``find`` per chunk. ``parse_event`` reads the fields of one
event when a translator needs them; ``edit_marked`` rewrites the few events of
a relayed payload that hold some bytes, leaving the others unread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    """Feed bytes in, get complete raw events (terminator included) out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        return _events(self._whole(data))

    def feed_joined(self, data: bytes) -> tuple[bytes, bytes]:
        """The complete events as one payload, and the last of them (both empty when
        none is complete yet): ``b"".join(feed(data))`` and its last item, without a
        list of every event, which is what a pass-through relay needs."""
        whole = self._whole(data)
        if b"\n\n\n" in whole or whole.startswith(b"\n\n"):  # empty events to drop
            events = _events(whole)
            return b"".join(events), events[-1] if events else b""
        # Every "\n\n" ends an event: the last one starts after the one before the end.
        cut = whole.rfind(b"\n\n", 0, len(whole) - 2)
        return whole, whole if cut < 0 else whole[cut + 2 :]

    def _whole(self, data: bytes) -> bytes:
        """The buffered bytes up to the last event terminator (b"" if none yet)."""
        buf = self._buf + data if self._buf else data
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                # Maybe the first half of a CRLF cut between two reads: normalised alone,
                # it would end a line the next read's LF would end again (a phantom event).
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf + held
            return b""
        self._buf = buf[end + 2 :] + held
        return buf[: end + 2]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated (non-empty means a cut-off stream)."""
        return self._buf.strip(b"\n")


def _events(whole: bytes) -> list[bytes]:
    """Complete events cut out of bytes that end with an event terminator."""
    if not whole:
        return []
    if whole.count(b"\n\n") == 1:
        return [whole]
    return [part + b"\n\n" for part in whole.split(b"\n\n")[:-1] if part]


def parse_event(raw: bytes) -> tuple[str | None, bytes]:
    """The ``event:`` name (if any) and the joined ``data:`` lines of one event."""
    name: str | None = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, b"\n".join(data)


def edit_marked(payload: bytes, marker: re.Pattern[bytes], edit: Callable[[bytes], bytes]) -> bytes:
    """``payload`` (whole events, as ``feed_joined`` gives them) with every event in which
    ``marker`` matches replaced by ``edit(event)`` (``b""`` drops it). The other events
    are copied as they are: a search in C finds the few worth reading."""
    out: list[bytes] = []
    done = 0  # the end of what is copied or edited so far
    for match in marker.finditer(payload):
        if match.start() < done:
            continue  # another match in an event already edited
        start = payload.rfind(b"\n\n", 0, match.start())
        start = 0 if start < 0 else start + 2
        end = payload.find(b"\n\n", match.end())
        end = len(payload) if end < 0 else end + 2
        out.append(payload[done:start])
        out.append(edit(payload[start:end]))
        done = end
    if not out:
        return payload
    out.append(payload[done:])
    return b"".join(out)


def iter_data(raw_events: list[bytes]) -> Iterator[bytes]:
    for raw in raw_events:
        _, data = parse_event(raw)
        if data:
            yield data


def encode_data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
