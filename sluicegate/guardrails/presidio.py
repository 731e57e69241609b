"""An optional recognizer for names and addresses: Presidio's analyzer (``sluicegate[presidio]``).

It needs a spaCy model installed next to it; without the package the config is
refused when it asks for ``presidio: true``. Its analyzer is made on first use
(loading a model takes seconds) and only runs on whole texts: a streamed answer
is scanned by the patterns alone (docs/guardrails.md).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from sluicegate.guardrails.scanner import Finding, Rule

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
