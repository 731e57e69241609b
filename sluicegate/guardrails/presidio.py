"""An optional recognizer for names and addresses: Presidio's analyzer (``sluicegate[presidio]``).

It needs a spaCy model installed next to it; without the package the config is
refused when it asks for ``presidio: true``. Its analyzer is made on first use
(loading a model takes seconds) and only runs on whole texts: a streamed answer
is scanned by the patterns alone (docs/guardrails.md).
"""

from __future__ import annotations

import bisect
import importlib.util
from collections.abc import Iterable
from typing import Any

from sluicegate.guardrails.scanner import Finding, Recognizer, Rule

# Presidio's entity names for the types it adds.
ENTITIES = {"person": "PERSON", "location": "LOCATION"}


def available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


class PresidioRecognizer:
    """Finds ``rules``' types (``person``, ``location``) with Presidio's analyzer."""

    def __init__(self, rules: dict[str, Rule], language: str = "en", threshold: float = 0.5):
        self.rules = {ENTITIES[t]: rule for t, rule in rules.items()}
        self.language = language
        self.threshold = threshold
        self._analyzer: Any = None

    def analyzer(self) -> Any:
        if self._analyzer is None:
            from presidio_analyzer import AnalyzerEngine

            self._analyzer = AnalyzerEngine()
        return self._analyzer

    def __call__(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        results = self.analyzer().analyze(
            text=text, entities=list(self.rules), language=self.language
        )
        return [
            Finding(r.start, r.end, self.rules[r.entity_type])
            for r in results
            if r.score >= self.threshold and r.entity_type in self.rules
        ]


# Between the texts of one request read as one document: a paragraph break, so that a
# name is not read across two fields.
_JOIN = "\n\n"


def batched(recognizer: Recognizer, texts: Iterable[str]) -> Recognizer:
    """``recognizer`` run once over all ``texts`` (a request's strings): a model's pass
    costs per call, and a request has many short strings. The returned recognizer
    answers for those texts from that one pass, and asks ``recognizer`` about others."""
    distinct = [text for text in dict.fromkeys(texts) if text.strip()]
    found: dict[str, list[Finding]] = {text: [] for text in distinct}
    starts: list[int] = []
    offset = 0
    for text in distinct:
        starts.append(offset)
        offset += len(text) + len(_JOIN)
    document = _JOIN.join(distinct)
    for finding in recognizer(document) if document else []:
        index = bisect.bisect_right(starts, finding.start) - 1
        text, base = distinct[index], starts[index]
        if finding.end - base <= len(text):  # one that runs across a break is no finding
            found[text].append(Finding(finding.start - base, finding.end - base, finding.rule))

    def recognize(text: str) -> list[Finding]:
        known = found.get(text)
        return known if known is not None else recognizer(text)

    return recognize
