"""``EventSplitter.feed_joined``: the pass-through relay's shortcut says what ``feed`` says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.schema.sse import EventSplitter

# Pieces that make every case the splitter knows: terminators, blank runs, CR and CRLF
# (also cut between two reads), field lines.
PIECES = st.sampled_from([b"data: x", b"a", b":", b"\n", b"\n\n", b"\r", b"\r\n", b"event: e"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(PIECES, max_size=12).map(b"".join), max_size=6))
def test_joined_is_the_events_joined_and_the_last_one(reads: list[bytes]) -> None:
    plain, joined = EventSplitter(), EventSplitter()
    for data in reads:
        events = plain.feed(data)
        payload, last = joined.feed_joined(data)
        assert payload == b"".join(events)
        assert last == (events[-1] if events else b"")
    assert joined.pending == plain.pending


def test_an_openai_stream_read_at_once() -> None:
    chunk = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    stream = chunk * 3 + b"data: [DONE]\n\n"
    assert EventSplitter().feed_joined(stream) == (stream, b"data: [DONE]\n\n")
    assert EventSplitter().feed_joined(stream[:-1]) == (chunk * 3, chunk)
    assert EventSplitter().feed_joined(b"data: x") == (b"", b"")
