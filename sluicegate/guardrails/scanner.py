"""Finding matches in text, rewriting them, and doing so on a stream as it arrives.

A ``Matcher`` runs a set of ``Rule``s (PII detectors, deny lists, the placeholders
to restore) over a text, as a reader sees it (``fold``: NFKC, no zero-width or other
format characters), and keeps the non-overlapping findings, as spans of the text it
was given. A ``Screening``
is one request's state: the placeholders handed out (``[EMAIL_1]``), what each
stands for, and the verdicts counted by type and action, never the values.

A ``StreamScanner`` rewrites text that arrives in pieces. It asks each pattern
whether the end of what it holds could still grow into a match (``regex``'s
partial matching) and holds back only from there, so ordinary words flow on at
once and a match split across pieces is still caught whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import regex

from sluicegate.errors import ContentBlocked
from sluicegate.guardrails.detectors import Hint, Validator
from sluicegate.guardrails.fold import fold, folded

ACTIONS = ("redact", "block", "log")
# Characters of already emitted text kept so that look-behinds see what came before.
_CONTEXT = 32


@dataclass(frozen=True, slots=True)
class Rule:
    type: str  # "email", "deny:<name>", "restore"
    label: str  # the placeholder's stem: [EMAIL_1]
    pattern: regex.Pattern[str]
    action: str  # "redact" | "block" | "log" | "restore"
    validate: Validator | None = None
    order: int = 0  # precedence where two findings cover the same text
    # Whether a text holds what every match holds (an "@", a digit): much cheaper than the
    # pattern, so a text without it is not scanned by the pattern at all.
    hint: Hint | None = None
    # The pattern made never to end: matched with partial=True from a match's start, it
    # answers "could this match still grow?" ("+44 20 " may go on "7946 0958").
    grow: regex.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grow = regex.compile(f"(?:{self.pattern.pattern})(?!)", self.pattern.flags)
        object.__setattr__(self, "grow", grow)


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    rule: Rule


# A whole-text detector outside the patterns (Presidio): text -> (start, end, rule) findings.
Recognizer = Callable[[str], list[Finding]]


def _resolve(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings: the earliest, then the longest, then by precedence."""
    found.sort(key=lambda f: (f.start, f.start - f.end, f.rule.order))
    chosen: list[Finding] = []
    end = -1
    for finding in found:
        if finding.start >= end:
            chosen.append(finding)
            end = finding.end
    return chosen


@dataclass(frozen=True, slots=True)
class Matcher:
    rules: tuple[Rule, ...]
    recognizer: Recognizer | None = None  # whole texts only: it cannot say "maybe, wait"

    def __bool__(self) -> bool:
        return bool(self.rules) or self.recognizer is not None

    def find(self, text: str, pos: int = 0, partial: bool = False) -> tuple[list[Finding], int]:
        """Findings in ``text[pos:]`` and, with ``partial``, the index from which the text
        must be held back because a match may start there (``len(text)``: none); both
        found in the folded text and given as places in ``text``."""
        view = fold(text)
        if not view.changes:  # every character where it was
            return self._find(view.text, pos, partial)
        found, hold = self._find(view.text, view.index(pos), partial)
        mapped: list[Finding] = []
        end = 0
        for f in found:
            start = view.start(f.start)
            if start < end:  # two findings read from one folded piece: the first has it
                continue
            end = view.end(f.end)
            mapped.append(Finding(start, end, f.rule))
        return mapped, view.start(hold)

    def _find(self, text: str, pos: int, partial: bool) -> tuple[list[Finding], int]:
        hold = len(text)
        found: list[Finding] = []
        hinted: dict[Hint, bool] = {}  # rules share hints (four look for digits)
        for rule in self.rules:
            # Not on a stream's partial text: "jane" must be held before its "@" arrives.
            if not partial and rule.hint is not None:
                holds = hinted.get(rule.hint)
                if holds is None:
                    holds = hinted[rule.hint] = rule.hint(text)
                if not holds:
                    continue
            for m in rule.pattern.finditer(text, pos=pos, partial=partial):
                start, end = m.span()
                if partial and (
                    m.partial or rule.grow.match(text, pos=start, partial=True) is not None
                ):
                    hold = min(hold, start)  # may still grow: wait for more
                    continue
                if start == end or (
                    rule.validate is not None and not rule.validate(m.group(), text, start)
                ):
                    continue
                found.append(Finding(start, end, rule))
        if self.recognizer is not None and not partial:
            found.extend(f for f in self.recognizer(text) if f.start >= pos)
        chosen = _resolve(found)
        if partial:
            for finding in reversed(chosen):  # a finding that reaches into the held part waits
                if finding.end > hold:
                    hold = min(hold, finding.start)
            chosen = [f for f in chosen if f.end <= hold]
        return chosen, hold


@dataclass(slots=True)
class Screening:
    """One request's placeholders and verdicts."""

    placeholders: dict[tuple[str, str], str] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)  # placeholder -> value
    counts: dict[str, int] = field(default_factory=dict)  # label -> last number used
    verdicts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (on, type, action)

    def placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        found = self.placeholders.get(key)
        if found is None:
            number = self.counts[label] = self.counts.get(label, 0) + 1
            found = self.placeholders[key] = f"[{label}_{number}]"
            self.originals[found] = value
        return found

    def note(self, on: str, type: str, action: str, count: int = 1) -> None:
        key = (on, type, action)
        self.verdicts[key] = self.verdicts.get(key, 0) + count

    def record(self) -> list[dict[str, object]]:
        """The verdicts as the audit log keeps them (types and counts, no values)."""
        return [
            {"on": on, "type": type, "action": action, "count": count}
            for (on, type, action), count in self.verdicts.items()
        ]

    def rewrite(self, text: str, findings: Sequence[Finding], on: str) -> str:
        """``text`` with each finding's action applied; ``ContentBlocked`` for a block."""
        if not findings:
            return text
        for finding in findings:
            if finding.rule.action == "block":
                self.note(on, finding.rule.type, "block")
                raise ContentBlocked(_blocked_message(on, finding.rule.type))
        pieces: list[str] = []
        last = 0
        for finding in findings:
            rule = finding.rule
            value = text[finding.start : finding.end]
            pieces.append(text[last : finding.start])
            if rule.action == "redact":
                pieces.append(self.placeholder(rule.label, value))
            elif rule.action == "restore":  # the placeholder as found, or as the model spelled it
                pieces.append(self.originals.get(value) or self.originals.get(folded(value), value))
            else:
                pieces.append(value)
            self.note(on, rule.type, rule.action)
            last = finding.end
        pieces.append(text[last:])
        return "".join(pieces)

    def restorer(self, order: int = -1) -> Rule | None:
        """A rule that maps this request's placeholders back to their values."""
        if not self.originals:
            return None
        alternatives = "|".join(regex.escape(p) for p in sorted(self.originals, key=len)[::-1])
        pattern = regex.compile(alternatives)
        return Rule("restore", "", pattern, "restore", order=order, hint=_has_bracket)


def _has_bracket(text: str) -> bool:
    return "[" in text


def _blocked_message(on: str, type: str) -> str:
    what = "request" if on == "request" else "answer"
    kind = type.removeprefix("deny:")
    if type.startswith("deny:"):
        return f"The {what} was blocked by the gateway's content rule '{kind}'."
    return f"The {what} was blocked: it contains {kind.replace('_', ' ')} data."


def screen(matcher: Matcher, screening: Screening, text: str, on: str) -> str:
    """A whole text, rewritten (or ``ContentBlocked``)."""
    findings, _ = matcher.find(text)
    return screening.rewrite(text, findings, on)


class StreamScanner:
    """Rewrites a text that arrives in pieces, holding back only what could start a match.

    ``hold_max`` bounds what is held: a match longer than that is caught only in part
    (docs/guardrails.md, "What it cannot catch")."""

    def __init__(
        self, matcher: Matcher, screening: Screening, on: str = "response", hold_max: int = 4096
    ) -> None:
        self.matcher = matcher
        self.screening = screening
        self.on = on
        self.hold_max = hold_max
        self.context = ""  # the end of what was already let through (look-behinds)
        self.held = ""

    def feed(self, text: str) -> str:
        if not text and not self.held:
            return ""
        return self._drain(text, final=False)

    def flush(self) -> str:
        return self._drain("", final=True) if self.held else ""

    def _drain(self, text: str, final: bool) -> str:
        base = len(self.context)
        data = self.context + self.held + text
        findings, hold = self.matcher.find(data, base, partial=not final)
        if len(data) - hold > self.hold_max:
            hold = len(data) - self.hold_max
            findings = [f for f in findings if f.end <= hold]
        out = self.screening.rewrite(data[base:hold], _shifted(findings, base), self.on)
        self.context = data[max(0, hold - _CONTEXT) : hold]
        self.held = data[hold:]
        return out


def _shifted(findings: list[Finding], by: int) -> list[Finding]:
    if not by:
        return findings
    return [Finding(f.start - by, f.end - by, f.rule) for f in findings]
