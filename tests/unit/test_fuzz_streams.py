"""Fuzzing of the stream decoders and the stream translator, seeded by ``tests/corpus``.

1. However a provider's stream is cut into reads, it decodes to the same chunks
   (a CRLF cut between two reads once made a phantom event: ``crlf_cut_*`` below).
2. A mutated stream (bytes flipped, inserted, the end cut off) decodes, or fails with the
   decoder's readable error (``GatewayError`` or ``ValueError``): never anything else.
3. Whatever was decoded, the Anthropic dialect's stream encoder translates it.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluicegate.config.model import Service
from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.errors import GatewayError
from sluicegate.providers.registry import ADAPTERS
from sluicegate.schema.sse import EventSplitter

CORPUS = Path(__file__).parent.parent / "corpus" / "streams"
FILES = sorted(CORPUS.iterdir())
SERVICE_FIELDS: dict[str, Any] = {
    "host": "provider.test",
    "project": "p",
    "location": "us-central1",
    "api_version": "2024-10-21",
}
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def decoder_for(path: Path) -> Any:
    provider = path.name.split("--")[0]
    cls = ADAPTERS[provider]
    assert cls is not None
    adapter = cls.for_service(Service(name="s", provider=provider, **SERVICE_FIELDS))
    return adapter.stream_decoder("chat", "m")


def decode(path: Path, data: bytes, cuts: list[int]) -> tuple[list[dict[str, Any]], str | None]:
    """The chunks decoded from ``data`` read in pieces cut at ``cuts``, and the error, if any."""
    decoder = decoder_for(path)
    chunks: list[dict[str, Any]] = []
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            chunks += decoder.feed(data[start:end])
            if decoder.error is not None:
                return chunks, f"provider error: {decoder.error.message}"
    except (GatewayError, ValueError) as exc:
        return chunks, f"{type(exc).__name__}"
    return chunks, None


def translate(chunks: list[dict[str, Any]]) -> bytes:
    encoder = AnthropicDialect().stream_encoder({"messages": []}, "m")
    out = b""
    for chunk in chunks:
        out += encoder.encode([copy.deepcopy(chunk)])
    return out + encoder.close()


def test_the_corpus_covers_every_streaming_provider() -> None:
    providers = {path.name.split("--")[0] for path in FILES}
    assert {"openai", "anthropic", "bedrock", "cohere", "gemini", "vertex"} <= providers
    for path in FILES:
        chunks, error = decode(path, path.read_bytes(), [])
        assert chunks and error is None, path.name
        assert translate(chunks).endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
@FUZZ
@given(cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
@example(cuts=list(range(1, 4096)))  # a byte at a time
def test_any_cut_decodes_to_the_same_chunks(path: Path, cuts: list[int]) -> None:
    data = path.read_bytes()
    assert _stable(decode(path, data, cuts)) == _stable(decode(path, data, []))


def _stable(decoded: tuple[list[dict[str, Any]], str | None]) -> Any:
    """Without the fields a decoder makes up per stream (a random id, the time)."""
    chunks, error = decoded
    return [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks], error


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("cut"), st.integers(min_value=0), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    for kind, at, arg in mutations:
        if not data:
            break
        at %= len(data)
        if kind == "flip":
            data = data[:at] + bytes([data[at] ^ arg]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + arg + data[at:]
        else:
            data = data[:at]
    return data


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
@FUZZ
@given(
    mutations=st.lists(mutation, min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=4),
)
@example(mutations=[("insert", 40, b"\xff\xfe")], cuts=[])  # not UTF-8
@example(mutations=[("insert", 10, b"\n\n")], cuts=[])  # an event cut in two
@example(mutations=[("cut", 200, 0)], cuts=[7])  # the stream ends early
@example(mutations=[("flip", 0, 0xFF)], cuts=[])  # the first byte (a frame's length)
def test_a_mutated_stream_decodes_or_fails_readably(
    path: Path, mutations: list[tuple[str, int, Any]], cuts: list[int]
) -> None:
    chunks, _ = decode(path, mutate(path.read_bytes(), mutations), cuts)
    translate(chunks)


line = st.binary(max_size=30).map(lambda b: b"x" + b.replace(b"\r", b"").replace(b"\n", b""))


@given(
    events=st.lists(st.lists(line, min_size=1, max_size=3), max_size=5),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8),
)
# A CRLF cut between two reads, after the CR: the event was cut in two at that line.
@example(events=[[b"event: a", b"data: b"]], newline=b"\r\n", cuts=[10])
@example(events=[[b"xa", b"xb"], [b"xc", b"xd"]], newline=b"\r\n", cuts=[3, 13])
def test_the_splitter_cuts_events_the_same_however_they_arrive(
    events: list[list[bytes]], newline: bytes, cuts: list[int]
) -> None:
    data = b"".join(newline.join(lines) + newline + newline for lines in events)
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    pieces = EventSplitter()
    got = [e for a, b in itertools.pairwise(bounds) for e in pieces.feed(data[a:b])]
    assert got == [b"\n".join(lines) + b"\n\n" for lines in events]
    assert pieces.pending == b""
