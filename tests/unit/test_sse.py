from __future__ import annotations

import re

import pytest

from sluicegate.schema.sse import DONE, EventSplitter, edit_marked, parse_event


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


def test_edit_marked_reads_only_the_events_it_finds() -> None:
    marker = re.compile(rb'"usage"\s*:\s*\{')
    seen: list[bytes] = []

    def edit(event: bytes) -> bytes:
        seen.append(event)
        return b"data: edited\n\n" if b"2" in event else b""

    a = b'data: {"n":1,"usage":null}\n\n'
    b = b'data: {"n":2,"usage":{"x":1},"more":{"usage":{}}}\n\n'
    c = b'data: {"n":3,"usage":{}}\n\n'
    assert edit_marked(a + b + c + DONE, marker, edit) == a + b"data: edited\n\n" + DONE
    assert seen == [b, c]  # each once, the one with two matches included
    assert edit_marked(a + DONE, marker, edit) == a + DONE
    assert edit_marked(c, marker, edit) == b""
