from __future__ import annotations

import pytest

from sluicegate.schema.sse import DONE, EventSplitter, parse_event


def test_events_are_cut_at_boundaries_whatever_the_chunking() -> None:
    stream = b'data: {"a":1}\n\ndata: {"b":2}\n\nevent: ping\ndata: {}\n\n' + DONE
    for size in range(1, len(stream) + 1):
        splitter = EventSplitter()
        events: list[bytes] = []
        for start in range(0, len(stream), size):
            events += splitter.feed(stream[start : start + size])
        assert events == [
            b'data: {"a":1}\n\n',
            b'data: {"b":2}\n\n',
            b"event: ping\ndata: {}\n\n",
            DONE,
        ]
        assert splitter.pending == b""


def test_crlf_streams_are_normalised() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\r\n\r\ndata: 2\r\n") == [b"data: 1\n\n"]
    assert splitter.pending == b"data: 2"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: x\n\n", (None, b"x")),
        (b"event: message_start\ndata: {}\n\n", ("message_start", b"{}")),
        (b"data:a\ndata: b\n\n", (None, b"a\nb")),
        (b": comment\n\n", (None, b"")),
    ],
)
def test_parse_event(raw: bytes, expected: tuple[str | None, bytes]) -> None:
    assert parse_event(raw) == expected
