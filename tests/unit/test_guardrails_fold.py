"""Matching on text as a reader sees it (NFKC, no format characters), rewriting the original
characters it was read from; and the walk over every string of a request body."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sluicegate.config.model import Policies
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.errors import InvalidRequest
from sluicegate.guardrails.fold import fold
from sluicegate.guardrails.policy import Guard, compile_guard
from sluicegate.guardrails.scanner import Screening, StreamScanner, screen
from sluicegate.guardrails.texts import opaque, rewrite_strings

WIDE = "".join(chr(ord(c) + 0xFEE0) for c in "jane@example.com")  # full-width forms
SPELLINGS = [
    ("write to jane@exa\u200bmple.com now", "jane@exa\u200bmple.com"),
    ("write to \u200bjane@example.com\u200b now", "jane@example.com"),
    (f"write to {WIDE} now", WIDE),
    ("write to ma\u00adry@example.org now", "ma\u00adry@example.org"),
    ("write to rene\u0301e@example.fr now", "rene\u0301e@example.fr"),
    ("write to jürgen.müller@example.de now", "jürgen.müller@example.de"),
    ("write to ﬁona@example.com now", "ﬁona@example.com"),  # the "fi" ligature
    ("write to jane@example.com\u2060 now", "jane@example.com"),
]


def _guard(**policies: Any) -> Guard:
    guard = compile_guard(Policies.model_validate(policies))
    assert guard is not None
    return guard


@pytest.mark.parametrize(("text", "address"), SPELLINGS)
def test_the_placeholder_replaces_exactly_the_characters_read(text: str, address: str) -> None:
    guard = _guard(guardrails={"pii": "redact", "restore": True})
    screening = Screening()
    rewritten = screen(guard.request, screening, text, "request")
    assert rewritten.replace("\u200b", "").replace("\u2060", "") == "write to [EMAIL_1] now"
    assert screening.originals == {"[EMAIL_1]": address}  # restored as the client wrote it


@pytest.mark.parametrize(("text", "address"), SPELLINGS)
@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_stream_of_any_spelling_is_caught_whole(text: str, address: str, size: int) -> None:
    guard = _guard(guardrails={"pii_answers": "redact"})
    scanner = StreamScanner(guard.answer, Screening(), "response")
    pieces = [scanner.feed(text[i : i + size]) for i in range(0, len(text), size)]
    streamed = "".join([*pieces, scanner.flush()])
    assert streamed.replace("\u200b", "").replace("\u2060", "") == "write to [EMAIL_1] now"


def test_fold_maps_every_span_back() -> None:
    text = "a\u200b\uff42c\u0301ﬁ\u00ad"  # \uff42: a full-width b
    view = fold(text)
    assert view.text == "abćfi"
    assert [view.start(i) for i in range(len(view.text) + 1)] == [0, 2, 3, 5, 5, len(text)]
    assert [view.end(i) for i in range(len(view.text) + 1)] == [0, 1, 3, 5, 6, 6]
    assert [view.index(p) for p in range(len(text) + 1)] == [0, 1, 1, 2, 3, 3, 5, 5]
    plain = fold("plain ascii")
    assert plain.text == "plain ascii" and not plain.changes
    assert not fold("schon gefaltet: grüße").changes


def test_a_placeholder_the_model_spells_in_full_width_is_restored() -> None:
    guard = _guard(guardrails={"pii": "redact", "restore": True})
    screen_ = guard.begin("openai", "chat")
    dialect = OpenAIDialect()
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi jane@example.com"}]}'
    screen_.request(dialect, dialect.parse("chat", raw), raw, [], len)
    wide = "\uff3bEMAIL_1\uff3d"  # in full-width brackets
    answer = f'{{"choices":[{{"index":0,"message":{{"content":"to {wide}"}}}}]}}'.encode()
    assert b"to jane@example.com" in screen_.answer(answer)


def test_every_string_and_key_is_screened_in_order() -> None:
    body: dict[str, Any] = {
        "user": "a@example.com",
        "deep": {"b@example.com": ["x", {"y": "c@example.com"}]},
        "last": "a@example.com",
    }
    seen: list[str] = []

    def edit(text: str) -> str:
        seen.append(text)
        return text.replace("@example.com", "@x")

    assert rewrite_strings(body, edit)
    assert body == {"user": "a@x", "deep": {"b@x": ["x", {"y": "c@x"}]}, "last": "a@x"}
    assert list(body["deep"]) == ["b@x"]
    assert seen == [
        "user",
        "a@example.com",
        "deep",
        "b@example.com",
        "x",
        "y",
        "c@example.com",
        "last",
        "a@example.com",
    ]
    assert not rewrite_strings({"n": 1, "t": [True, None, 2.5]}, edit)


def test_deep_bodies_cost_no_recursion() -> None:
    body: Any = "a@example.com"
    for _ in range(5000):
        body = {"k": [body]}
    assert rewrite_strings(body, lambda t: t.replace("a@", "b@"))
    for _ in range(5000):
        body = body["k"][0]
    assert body == "b@example.com"


def test_a_rewrite_too_deep_to_encode_is_refused_not_a_crash() -> None:
    guard = _guard(guardrails={"pii": "redact"})
    dialect = OpenAIDialect()
    deep = b'"a@example.com"'
    for _ in range(300):
        deep = b'{"k":' + deep + b"}"
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + deep + b"}"
    with pytest.raises(InvalidRequest) as caught:
        guard.begin("openai", "chat").request(dialect, dialect.parse("chat", raw), raw, [], len)
    assert caught.value.code == "nested_too_deeply"


def test_encoded_payloads_are_passed_over() -> None:
    blob = base64.b64encode(b"\x00jane@example.com\xff" * 40).decode()
    image = "data:image/png;base64," + blob
    assert opaque(image) and opaque(blob)
    assert not opaque("data:text/plain,jane@example.com " * 10)
    assert not opaque("short@example.com")
    guard = _guard(guardrails={"pii": "redact"})
    dialect = OpenAIDialect()
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image}},
                    {"type": "input_audio", "input_audio": {"data": blob, "format": "wav"}},
                    {"type": "text", "text": "from jane@example.com"},
                ],
            }
        ],
    }
    import orjson

    raw = orjson.dumps(body)
    parsed, _ = guard.begin("openai", "chat").request(
        dialect, dialect.parse("chat", raw), raw, [], len
    )
    content = parsed.native["messages"][0]["content"]
    assert content[0]["image_url"]["url"] == image and content[1]["input_audio"]["data"] == blob
    assert content[2]["text"] == "from [EMAIL_1]"


def test_names_are_recognized_in_one_pass_over_the_whole_body() -> None:
    """A named-entity model (Presidio) costs per call: the body's strings go to it as one
    document, and what it finds is mapped back to each string."""
    import re

    import orjson
    import regex

    from sluicegate.guardrails.scanner import Finding, Matcher, Rule

    person = Rule("person", "PERSON", regex.compile("(?!)"), "redact")
    asked: list[str] = []

    def recognizer(text: str) -> list[Finding]:
        asked.append(text)
        found = [Finding(m.start(), m.end(), person) for m in re.finditer("John Smith", text)]
        return [*found, Finding(0, len(text), person)]  # one across every break: dropped

    empty = Matcher(())
    guard = Guard(Matcher((), recognizer), empty, empty, False, None, None, "", 0)
    body = {
        "model": "m",
        "user": "John Smith",
        "metadata": {"note": "ask " + "".join(chr(ord(c) + 0xFEE0) for c in "John") + " Smith"},
        "messages": [{"role": "user", "content": "Hi John Smith, and John Smith"}],
    }
    raw = orjson.dumps(body)
    dialect = OpenAIDialect()
    parsed, _ = guard.begin("openai", "chat").request(
        dialect, dialect.parse("chat", raw), raw, [], len
    )
    assert len(asked) == 1
    native = parsed.native
    assert native["user"] == "[PERSON_1]"
    assert native["metadata"]["note"] == "ask [PERSON_2]"  # its own spelling, its own value
    assert native["messages"][0]["content"] == "Hi [PERSON_1], and [PERSON_1]"
