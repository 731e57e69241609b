"""A rule's guardrails and transforms, compiled once with the routing table (``Guard``),
and what one request does with them (``Screen``).

The request path calls a ``Screen`` at a handful of points: once on the request
body (checks, content rules, PII, transforms; re-encoded once if anything was
rewritten), on the provider request's headers, on the answer (whole or streamed)
and on the answer's headers. The audit log and the metrics read its verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import regex

from sluicegate.config.guardrails import PII_TYPES, DenyRule, GuardAction
from sluicegate.config.model import Policies
from sluicegate.dialects.base import Dialect, Parsed
from sluicegate.errors import ContentBlocked, InvalidRequest
from sluicegate.guardrails import presidio
from sluicegate.guardrails.detectors import BUILTIN, PRESIDIO_TYPES
from sluicegate.guardrails.fold import fold
from sluicegate.guardrails.params import ParamCheck
from sluicegate.guardrails.scanner import Matcher, Recognizer, Rule, Screening, screen
from sluicegate.guardrails.stream import ChunkGuard
from sluicegate.guardrails.texts import answer_slots, rewrite_strings
from sluicegate.guardrails.transform import Transform

Count = Callable[[dict[str, Any]], int]


def _actions(setting: GuardAction | dict[str, GuardAction]) -> dict[str, str]:
    """Entity type -> action, ``off`` left out."""
    if isinstance(setting, str):
        chosen = dict.fromkeys(BUILTIN, setting)
    else:
        default = setting.get("default", "off")
        chosen = {t: setting.get(t, default) for t in PII_TYPES}
        if "default" in setting:  # the default covers the pattern types, not the NER ones
            for t in PRESIDIO_TYPES:
                chosen[t] = setting.get(t, "off")
    return {t: a for t, a in chosen.items() if a != "off"}


def _pii_rules(actions: dict[str, str], presidio_on: bool) -> tuple[list[Rule], dict[str, Rule]]:
    rules = [
        Rule(d.type, d.label, d.pattern, actions[d.type], d.validate, order, d.hint)
        for order, d in enumerate(BUILTIN.values())
        if d.type in actions
    ]
    ner = {
        t: Rule(t, label, regex.compile(r"(?!)"), actions[t], None, 100 + i)
        for i, (t, label) in enumerate(PRESIDIO_TYPES.items())
        if presidio_on and t in actions
    }
    return rules, ner


def _word(word: str) -> str:
    escaped = regex.escape(word)
    start = r"\b" if regex.match(r"\w", word[0]) else ""
    end = r"\b" if regex.match(r"\w", word[-1]) else ""
    return start + escaped + end


def _deny_rules(deny: list[DenyRule], on: str) -> list[Rule]:
    rules: list[Rule] = []
    for rule in deny:
        if rule.applies_to not in (on, "both"):
            continue
        flags = 0 if rule.case_sensitive else regex.IGNORECASE
        patterns = list(rule.patterns)
        if rule.words:
            patterns.append("(?:" + "|".join(_word(w) for w in rule.words) + ")")
        for pattern in patterns:
            compiled = regex.compile(pattern, flags)
            rules.append(Rule(f"deny:{rule.name}", "REDACTED", compiled, rule.action, None, 50))
    return rules


def _matcher(rules: list[Rule], ner: dict[str, Rule]) -> Matcher:
    recognizer: Recognizer | None = presidio.PresidioRecognizer(ner) if ner else None
    return Matcher(tuple(rules), recognizer)


@dataclass(frozen=True, slots=True, eq=False)
class Guard:
    request: Matcher  # PII and deny rules on what the client sends
    answer: Matcher  # PII and deny rules on what the provider answers
    scrub: Matcher  # every PII type in use, redacted in logged bodies
    restore: bool
    checks: ParamCheck | None
    transform: Transform | None
    refusal: str
    hold: int

    def begin(self, dialect: str, endpoint: str) -> Screen:
        return Screen(self, dialect, endpoint)


def compile_guard(policies: Policies) -> Guard | None:
    """The rule's ``Guard``, or None when it has neither guardrails nor transforms."""
    guard, transform = policies.guardrails, Transform.of(policies.transform)
    if guard is None:
        if transform is None:
            return None
        empty = Matcher(())
        return Guard(empty, empty, empty, False, None, transform, "", 0)
    asked, answered = _actions(guard.pii), _actions(guard.pii_answers)
    request_rules, request_ner = _pii_rules(asked, guard.presidio)
    answer_rules, answer_ner = _pii_rules(answered, guard.presidio)
    every = {t: "redact" for t in (*asked, *answered)}
    scrub_rules, scrub_ner = _pii_rules(every, guard.presidio)
    return Guard(
        request=_matcher(request_rules + _deny_rules(guard.deny, "request"), request_ner),
        answer=_matcher(answer_rules + _deny_rules(guard.deny, "response"), answer_ner),
        scrub=_matcher(scrub_rules, scrub_ner),
        restore=guard.restore,
        checks=ParamCheck.of(guard),
        transform=transform,
        refusal=guard.refusal,
        hold=guard.stream_hold,
    )


def _rewrite(matcher: Matcher, screening: Screening, slots: Any, on: str) -> bool:
    changed = False
    for container, key in slots:
        text = container[key]
        new = screen(matcher, screening, text, on)
        if new != text:
            container[key] = new
            changed = True
    return changed


def _repeats_keys(raw: bytes, native: dict[str, Any]) -> bool:
    """Whether the client's bytes hold more than the parsed body: an object key written
    twice, whose earlier value the parse dropped unscreened (it must not go on in the
    client's bytes). Every string of the body comes back out of orjson with its quotes,
    and a quote escaped as ``\u0022`` as ``\"``; only a value the parse dropped leaves
    the client's bytes with more."""
    written = raw.count(b'"') + raw.count(b"\\u0022")
    try:
        return written > orjson.dumps(native).count(b'"')
    except orjson.JSONEncodeError:
        return True


@dataclass(slots=True)
class Screen:
    """One request's run through its rule's ``Guard``."""

    guard: Guard
    dialect: str
    endpoint: str
    screening: Screening = field(default_factory=Screening)
    tags: dict[str, str] | None = None
    _answer: Matcher | None = None

    # -- the request ---------------------------------------------------------

    def request(
        self,
        dialect: Dialect,
        parsed: Parsed,
        raw: bytes,
        headers: list[tuple[bytes, bytes]],
        count: Count,
    ) -> tuple[Parsed, bytes]:
        """Check and rewrite the request; the same ``parsed`` and ``raw`` when nothing
        changed (so that pass-through stays byte for byte), else the body re-encoded once."""
        guard = self.guard
        # Counting tokens (/v1/messages/count_tokens) sends the text, so PII and content
        # rules apply; the schema and the transform are for requests that generate.
        generates = self.endpoint != "count_tokens"
        if guard.checks is not None and generates:
            guard.checks.check(parsed.model, parsed.native, parsed.canonical, count)
        native = parsed.native
        changed = False
        if guard.request:  # every string the provider will see, in one walk of the body
            changed = rewrite_strings(native, self._request_text(native))
        if guard.transform is not None and generates:
            self.tags = guard.transform.tags_of(headers)
            if guard.transform.edits_body:
                changed = guard.transform.body(self.dialect, self.endpoint, native) or changed
        if not changed and not (guard.request and _repeats_keys(raw, native)):
            return parsed, raw
        try:
            raw = orjson.dumps(native)
        except orjson.JSONEncodeError:  # nested deeper than it can be written again
            raise InvalidRequest(
                "The request is nested too deeply for the gateway's guardrails to rewrite it.",
                code="nested_too_deeply",
            ) from None
        return dialect.parse(self.endpoint, raw), raw

    def strings(self, body: dict[str, Any]) -> bool:
        """PII and content rules on every string of a body no dialect models (the media
        endpoints' JSON, a form's plain fields); whether any was rewritten. A block raises."""
        if not self.guard.request:
            return False
        return rewrite_strings(body, self._request_text(body))

    def _request_text(self, native: dict[str, Any]) -> Callable[[str], str]:
        matcher, screening = self.guard.request, self.screening
        if matcher.recognizer is not None:  # names and places: one model pass for the body
            texts: list[str] = []

            def collect(text: str) -> str:
                texts.append(fold(text).text)  # the recognizer reads folded text
                return text

            rewrite_strings(native, collect)
            recognizer = presidio.batched(matcher.recognizer, texts)
            matcher = Matcher(matcher.rules, recognizer)
        clean: set[str] = set()  # texts found to hold nothing ("role", "type", ...)

        def edit(text: str) -> str:
            if text in clean:
                return text
            findings, _ = matcher.find(text)
            if not findings:
                clean.add(text)
                return text
            return screening.rewrite(text, findings, "request")

        return edit

    def upstream_headers(self, headers: dict[str, str], client: list[tuple[bytes, bytes]]) -> None:
        edit = self.guard.transform.request_headers if self.guard.transform else None
        if edit is not None:
            edit.upstream(headers, client)

    # -- the answer ----------------------------------------------------------

    @property
    def watches_answers(self) -> bool:
        """Whether answers are scanned (a stream is then decoded, not passed through)."""
        return bool(self.guard.answer) or (self.guard.restore and bool(self.screening.originals))

    @property
    def personal(self) -> bool:
        """Whether the answer gets this client's values back (so it must not be cached)."""
        return self.guard.restore and bool(self.screening.originals)

    def _answer_matcher(self) -> Matcher:
        if self._answer is None:
            answer = self.guard.answer
            restorer = self.screening.restorer(order=-1) if self.guard.restore else None
            rules = answer.rules if restorer is None else (restorer, *answer.rules)
            self._answer = Matcher(rules, answer.recognizer)
        return self._answer

    def answer(self, body: bytes) -> bytes:
        """A whole answer in the client's dialect: rewritten, or replaced by the refusal."""
        if not self.watches_answers:
            return body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(data, dict):
            return body
        slots = answer_slots(self.dialect, self.endpoint, data)
        try:
            changed = _rewrite(self._answer_matcher(), self.screening, slots, "response")
        except ContentBlocked:
            self._refuse(data)
            changed = True
        return orjson.dumps(data) if changed else body

    def _refuse(self, data: dict[str, Any]) -> None:
        refusal = self.guard.refusal
        if self.dialect == "responses":
            part = {"type": "output_text", "text": refusal, "annotations": []}
            message = {"type": "message", "role": "assistant", "status": "completed"}
            data["output"] = [{**message, "id": "msg_refused", "content": [part]}]
            data["status"], data["incomplete_details"] = "incomplete", {"reason": "content_filter"}
            return
        if self.dialect == "anthropic":
            data["content"] = [{"type": "text", "text": refusal}]
            data["stop_reason"] = "refusal"
            return
        for choice in data.get("choices") or ():
            if "text" in choice:
                choice["text"] = refusal
            else:
                choice["message"] = {"role": "assistant", "content": refusal}
            choice["finish_reason"] = "content_filter"

    def stream_guard(self) -> ChunkGuard | None:
        if not self.watches_answers:
            return None
        return ChunkGuard(self._answer_matcher(), self.screening, self.guard.hold)

    def answer_headers(self, out: list[tuple[bytes, bytes]]) -> None:
        edit = self.guard.transform.response_headers if self.guard.transform else None
        if edit is not None:
            edit.answer(out)

    # -- the record ----------------------------------------------------------

    def verdicts(self) -> list[dict[str, object]] | None:
        return self.screening.record() or None

    def scrub(self, data: bytes) -> bytes:
        """A logged body with the PII of every type in use replaced by placeholders: each
        string of a JSON body (so that an escaped ``\u00fc`` is read as the letter), or
        the text of any other (a stream's events)."""
        if not self.guard.scrub or not data:
            return data
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict | list):
            if not rewrite_strings(document, self._scrubbed):
                return data
            try:
                return orjson.dumps(document)
            except orjson.JSONEncodeError:  # too deep to write again: scrub it as text
                pass
        text = data.decode("utf-8", "replace")
        scrubbed = self._scrubbed(text)
        return data if scrubbed is text else scrubbed.encode()

    def _scrubbed(self, text: str) -> str:
        findings, _ = self.guard.scrub.find(text)
        if not findings:
            return text
        pieces, last = [], 0
        for finding in findings:
            value = text[finding.start : finding.end]
            pieces.append(text[last : finding.start])
            pieces.append(self.screening.placeholder(finding.rule.label, value))
            last = finding.end
        pieces.append(text[last:])
        return "".join(pieces)
