"""The guardrails package without a server: redaction and restore, deny rules, the
streaming scanner's hold-back, chunk guards, parameter checks, transforms and config."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.config.model import Policies
from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.errors import ContentBlocked, InvalidRequest
from sluicegate.guardrails import presidio
from sluicegate.guardrails.policy import Guard, compile_guard
from sluicegate.guardrails.scanner import Rule, Screening, StreamScanner
from sluicegate.telemetry.audit import scrub_bodies
from sluicegate.telemetry.exchange import Exchange

EMAIL = "jane@example.com"


def _guard(**policies: Any) -> Guard:
    guard = compile_guard(Policies.model_validate(policies))
    assert guard is not None
    return guard


def _stream(scanner: StreamScanner, text: str, size: int) -> list[str]:
    pieces = [scanner.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return [*pieces, scanner.flush()]


def test_the_same_value_gets_the_same_placeholder_and_comes_back() -> None:
    guard = _guard(guardrails={"pii": "redact", "restore": True})
    screen = guard.begin("openai", "chat")
    dialect = OpenAIDialect()
    raw = (
        b'{"model":"m","messages":[{"role":"user","content":"'
        + f"{EMAIL}, b@example.org, {EMAIL}".encode()
        + b'"}]}'
    )
    parsed, sent = screen.request(dialect, dialect.parse("chat", raw), raw, [], len)
    assert parsed.canonical["messages"][0]["content"] == "[EMAIL_1], [EMAIL_2], [EMAIL_1]"
    assert EMAIL.encode() not in sent
    answer = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"to [EMAIL_2]"}}]}'
    assert b"b@example.org" in screen.answer(answer)
    assert screen.verdicts() == [
        {"on": "request", "type": "email", "action": "redact", "count": 3},
        {"on": "response", "type": "restore", "action": "restore", "count": 1},
    ]


def test_nothing_rewritten_keeps_the_very_bytes() -> None:
    guard = _guard(guardrails={"pii": "log"})
    dialect = OpenAIDialect()
    raw = b'{"model": "m",  "messages": [{"role": "user", "content": "' + EMAIL.encode() + b'"}]}'
    parsed = dialect.parse("chat", raw)
    screen = guard.begin("openai", "chat")
    again, sent = screen.request(dialect, parsed, raw, [], len)
    assert sent is raw and again is parsed
    assert screen.verdicts() == [{"on": "request", "type": "email", "action": "log", "count": 1}]


def test_anthropic_system_tool_input_and_results_are_redacted() -> None:
    guard = _guard(guardrails={"pii": {"email": "redact", "ip_address": "redact"}})
    dialect = AnthropicDialect()
    body = (
        b'{"model":"c","max_tokens":5,"system":[{"type":"text","text":"admin '
        + EMAIL.encode()
        + b'"}],"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":'
        b'[{"type":"tool_use","id":"t","name":"f","input":{"host":"10.0.0.7"}}]},'
        b'{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":'
        b'[{"type":"text","text":"owner ' + EMAIL.encode() + b'"}]}]}]}'
    )
    screen = guard.begin("anthropic", "chat")
    parsed, sent = screen.request(dialect, dialect.parse("chat", body), body, [], len)
    assert EMAIL.encode() not in sent and b"10.0.0.7" not in sent
    assert parsed.native["system"][0]["text"] == "admin [EMAIL_1]"
    assert parsed.native["messages"][1]["content"][0]["input"] == {"host": "[IP_ADDRESS_1]"}
    assert parsed.canonical["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "t",
        "content": "owner [EMAIL_1]",
    }


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64])
def test_a_stream_cut_anywhere_gives_the_whole_texts_result(size: int) -> None:
    guard = _guard(
        guardrails={
            "pii_answers": "redact",
            "deny": [{"name": "x", "words": ["classified"], "action": "redact"}],
        }
    )
    text = (
        f"Write to {EMAIL} or +44 20 7946 0958; card 4111 1111 1111 1111 is "
        "classified, build 1.2.3.4 stays, ip 10.0.0.1 goes."
    )
    whole = guard.begin("openai", "chat")
    expected = whole.answer(
        b'{"choices":[{"index":0,"message":{"content":"' + text.encode() + b'"}}]}'
    )
    screening = Screening()
    scanner = StreamScanner(guard.answer, screening, "response")
    streamed = "".join(_stream(scanner, text, size))
    assert streamed.encode() in expected
    assert streamed == (
        "Write to [EMAIL_1] or [PHONE_1]; card [CREDIT_CARD_1] is [REDACTED_1], "
        "build 1.2.3.4 stays, ip [IP_ADDRESS_1] goes."
    )


def test_the_stream_holds_back_only_what_could_start_a_match() -> None:
    guard = _guard(guardrails={"deny": [{"name": "x", "words": ["forbidden phrase"]}]})
    scanner = StreamScanner(guard.answer, Screening(), "response")
    assert scanner.feed("Nothing to see here, ") == "Nothing to see here, "
    assert scanner.feed("this is forb") == "this is "  # "forb" may begin the phrase
    assert scanner.feed("earance.") == "forbearance."
    assert scanner.flush() == ""


def test_a_blocked_match_in_a_stream_raises_and_lets_nothing_of_it_through() -> None:
    guard = _guard(guardrails={"deny": [{"name": "x", "patterns": [r"\bproject\s+\w+bird\b"]}]})
    scanner = StreamScanner(guard.answer, Screening(), "response")
    seen = scanner.feed("About project ") + scanner.feed("blue")
    with pytest.raises(ContentBlocked) as caught:
        scanner.feed("bird now")
    assert "project" not in seen and "blue" not in seen
    assert caught.value.code == "content_blocked"


def test_hold_max_bounds_what_is_held() -> None:
    guard = _guard(guardrails={"pii_answers": "redact", "stream_hold": 16})
    scanner = StreamScanner(guard.answer, Screening(), "response", hold_max=16)
    assert scanner.feed("a" * 100) == "a" * 100  # no email has a 100-letter local part
    begun = "-----BEGIN PRIVATE KEY-----" + "A" * 100  # could still become a key block
    assert scanner.feed(begun) == begun[:-16]


def test_chunk_guard_flushes_held_text_before_the_finish() -> None:
    guard = _guard(guardrails={"pii": "redact", "restore": True})
    screen = guard.begin("openai", "chat")
    screen.screening.placeholder("EMAIL", EMAIL)
    chunk_guard = screen.stream_guard()
    assert chunk_guard is not None

    def chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
        delta = {} if content is None else {"content": content}
        return {"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = []
    for piece in ["Mail ", "[EMA", "IL_1", "] soon"]:
        out += chunk_guard.feed([chunk(piece)])
    out += chunk_guard.feed([chunk(None, "stop")])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert text == f"Mail {EMAIL} soon"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_chunk_guard_close_sends_what_is_held_without_a_finish() -> None:
    guard = _guard(guardrails={"pii_answers": "redact"})
    chunk_guard = guard.begin("openai", "chat").stream_guard()
    assert chunk_guard is not None
    assert chunk_guard.feed([{"choices": [{"index": 0, "delta": {"content": "bye now"}}]}])
    [last] = chunk_guard.close()
    assert last["choices"][0]["delta"]["content"] == "now"


def test_whole_answers_are_refused_in_each_dialect() -> None:
    guard = _guard(guardrails={"pii_answers": {"secret": "block"}, "refusal": "No."})
    leaked = "AKIAIOSFODNN7EXAMPLE"
    openai_answer = guard.begin("openai", "chat").answer(
        b'{"choices":[{"index":0,"message":{"role":"assistant","content":"'
        + leaked.encode()
        + b'"},"finish_reason":"stop"}]}'
    )
    assert leaked.encode() not in openai_answer
    assert b'"finish_reason":"content_filter"' in openai_answer and b'"No."' in openai_answer
    anthropic_answer = guard.begin("anthropic", "chat").answer(
        b'{"type":"message","content":[{"type":"text","text":"key '
        + leaked.encode()
        + b'"}],"stop_reason":"end_turn"}'
    )
    assert leaked.encode() not in anthropic_answer and b'"refusal"' in anthropic_answer


def _check(guard: Guard, body: dict[str, Any]) -> InvalidRequest:
    import orjson

    dialect = OpenAIDialect()
    raw = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], **body})
    with pytest.raises(InvalidRequest) as caught:
        guard.begin("openai", "chat").request(dialect, dialect.parse("chat", raw), raw, [], len)
    return caught.value


def test_parameter_checks_name_the_parameter() -> None:
    guard = _guard(
        guardrails={
            "params": {
                "models": ["gpt*"],
                "max_tokens": 10,
                "top_p": {"max": 0.9},
                "forbidden": ["n"],
            }
        }
    )
    assert _check(guard, {"model": "claude"}).param == "model"
    assert _check(guard, {"max_tokens": 11}).param == "max_tokens"
    assert _check(guard, {"top_p": 0.95}).param == "top_p"
    assert _check(guard, {"n": 2}).param == "n"
    assert _check(guard, {"n": 2}).code == "parameter_not_allowed"


def test_transforms_edit_the_body_and_the_headers() -> None:
    guard = _guard(
        transform={
            "params": {"temperature": 0},
            "defaults": {"max_tokens": 5, "top_p": 1},
            "remove": ["seed"],
            "system_suffix": "Answer in French.",
            "request_headers": {
                "add": {"X-A": "1"},
                "remove": ["x-b"],
                "rename": {"x-in": "x-out"},
            },
            "response_headers": {"rename": {"x-sluicegate-service": "x-served-by"}},
        }
    )
    import orjson

    dialect = OpenAIDialect()
    raw = orjson.dumps(
        {
            "model": "m",
            "top_p": 0.5,
            "seed": 1,
            "messages": [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "hi"},
            ],
        }
    )
    screen = guard.begin("openai", "chat")
    parsed, _ = screen.request(dialect, dialect.parse("chat", raw), raw, [], len)
    body = parsed.canonical
    assert body["temperature"] == 0 and body["max_tokens"] == 5 and body["top_p"] == 0.5
    assert "seed" not in body
    assert body["messages"][0]["content"] == "Be kind.\n\nAnswer in French."
    headers = {"x-b": "gone", "content-type": "application/json"}
    screen.upstream_headers(headers, [(b"x-in", b"v")])
    assert headers == {"content-type": "application/json", "x-out": "v", "x-a": "1"}
    out = [(b"x-sluicegate-service", b"s")]
    screen.answer_headers(out)
    assert out == [(b"x-served-by", b"s")]


def test_logged_bodies_are_scrubbed_with_the_requests_placeholders() -> None:
    guard = _guard(guardrails={"pii": {"email": "log"}, "pii_answers": {"iban": "log"}})
    ex = Exchange("r", "g", "chat", "openai")
    ex.screen = guard.begin("openai", "chat")
    request, response = scrub_bodies(
        ex, f'{{"content": "{EMAIL}"}}'.encode(), b"IBAN DE89370400440532013000 " + EMAIL.encode()
    )
    assert request == b'{"content":"[EMAIL_1]"}'  # a JSON body is read and written as JSON
    assert response == b"IBAN [IBAN_1] [EMAIL_1]"
    # Escaped letters are read as letters; a body with nothing to scrub keeps its bytes.
    escaped = b'{"to": "j\\u00fcrgen@example.de", "n": 1}'
    assert scrub_bodies(ex, escaped, None)[0] == b'{"to":"[EMAIL_2]","n":1}'
    assert scrub_bodies(ex, b'{"to": "nobody"}', None)[0] == b'{"to": "nobody"}'
    assert scrub_bodies(Exchange("r", "g", "chat", "openai"), b"x", None) == (b"x", None)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"guardrails": {"pii": {"emails": "redact"}}}, "not an entity type"),
        ({"guardrails": {"pii": "log", "restore": True}}, "restore needs"),
        ({"guardrails": {"deny": [{"name": "x"}]}}, "at least one of words"),
        ({"guardrails": {"deny": [{"name": "x", "patterns": ["("]}]}}, "not a regular"),
        ({"guardrails": {"deny": [{"name": "x", "patterns": ["a*"]}]}}, "empty text"),
        ({"transform": {"params": {"model": "x"}}}, "transform.models"),
        ({"transform": {"request_headers": {"add": {"Host": "x"}}}}, "set by the gateway"),
    ],
)
def test_config_mistakes_are_refused(policies: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Policies.model_validate(policies)


def test_person_needs_presidio() -> None:
    with pytest.raises(ValidationError, match="person needs presidio"):
        Policies.model_validate({"guardrails": {"pii": {"person": "redact"}}})
    if not presidio.available():
        with pytest.raises(ValidationError, match="extra is not installed"):
            Policies.model_validate({"guardrails": {"presidio": True}})


def test_presidio_backend_finds_names() -> None:
    pytest.importorskip("presidio_analyzer")
    guard = _guard(guardrails={"pii": {"person": "redact"}, "presidio": True})
    screen = guard.begin("openai", "chat")
    dialect = OpenAIDialect()
    raw = b'{"model":"m","messages":[{"role":"user","content":"My name is John Smith."}]}'
    parsed, _ = screen.request(dialect, dialect.parse("chat", raw), raw, [], len)
    assert "John Smith" not in parsed.canonical["messages"][0]["content"]


def test_random_cuts_never_leak_a_secret() -> None:
    guard = _guard(guardrails={"pii_answers": {"secret": "block"}})
    rng = random.Random(7)
    text = "Here you go: AKIAIOSFODNN7EXAMPLE and more."
    for _ in range(50):
        scanner = StreamScanner(guard.answer, Screening(), "response")
        cuts = sorted(rng.sample(range(1, len(text)), 5))
        out = ""
        with pytest.raises(ContentBlocked):
            for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
                out += scanner.feed(text[a:b])
            scanner.flush()
        assert "AKIA" not in out


def test_rows_spilled_before_the_guardrail_columns_are_replayed(tmp_path: Any) -> None:
    import asyncio
    import concurrent.futures

    import orjson

    from sluicegate.stores.base import AUDIT_ROW_COLUMNS
    from sluicegate.telemetry.audit import AuditWriter
    from sluicegate.telemetry.metrics import Metrics

    class Sink:
        rows: list[Any] = []

        async def write_audit(self, rows: Any) -> None:
            self.rows.extend(rows)

        async def purge_audit(self, before: Any, limit: int) -> int:
            return 0

    base = [f"id{i}" for i in range(20)]  # the 20 columns before bodies
    with_bodies = [*base, "req", "resp", False, True]
    with_guard = [*base, "[]", "{}", "req", "resp", False, True]  # before the endpoint
    spill = tmp_path / "spill.jsonl"
    spill.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (base, with_bodies, with_guard)))
    sink = Sink()
    writer = AuditWriter(sink, Metrics(lambda: []), "g", spill)
    writer._pending = True
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever runs
        pool.submit(asyncio.run, writer.flush()).result(10)
    assert len(sink.rows) == 3 and all(len(r) == len(AUDIT_ROW_COLUMNS) for r in sink.rows)
    named = [dict(zip(AUDIT_ROW_COLUMNS, row, strict=True)) for row in sink.rows]
    assert named[0]["guardrail"] is None and named[0]["request_body"] is None
    assert named[1]["guardrail"] is None and named[1]["tags"] is None
    assert named[1]["request_body"] == "req" and named[1]["response_truncated"] is True
    assert named[1]["error_type"] == "id19"
    assert named[2]["guardrail"] == "[]" and named[2]["tags"] == "{}"
    assert named[2]["endpoint"] is None and named[2]["request_body"] == "req"
    assert all(row["error_type"] == "id19" for row in named)


def test_presidio_results_map_to_findings_by_type_and_score() -> None:
    """Our side of the Presidio contract, with an analyzer that answers as Presidio's does
    (``RecognizerResult``: entity_type, start, end, score); Presidio itself needs a spaCy
    model that cannot be installed offline, so its own detection is not run here."""
    from dataclasses import dataclass

    import regex as re

    @dataclass
    class Result:
        entity_type: str
        start: int
        end: int
        score: float

    class Analyzer:
        def __init__(self) -> None:
            self.asked: list[tuple[str, list[str], str]] = []

        def analyze(self, text: str, entities: list[str], language: str) -> list[Result]:
            self.asked.append((text, entities, language))
            return [
                Result("PERSON", 11, 21, 0.85),
                Result("LOCATION", 25, 31, 0.3),  # below the threshold
                Result("PHONE_NUMBER", 0, 2, 0.99),  # a type not asked for
            ]

    person = Rule("person", "PERSON", re.compile("(?!)"), "redact")
    place = Rule("location", "LOCATION", re.compile("(?!)"), "redact")
    recognizer = presidio.PresidioRecognizer({"person": person, "location": place})
    analyzer = Analyzer()
    recognizer._analyzer = analyzer
    text = "My name is John Smith in Berlin."
    found = recognizer(text)
    assert [(f.start, f.end, f.rule.type) for f in found] == [(11, 21, "person")]
    assert text[11:21] == "John Smith"
    assert analyzer.asked == [(text, ["PERSON", "LOCATION"], "en")]
    assert recognizer("   ") == [] and len(analyzer.asked) == 1  # blank texts are not sent
