"""Watch secrets and search text for them, and for their obvious encodings."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from urllib.parse import quote


def _forms(value: str) -> dict[str, str]:
    raw = value.encode()
    forms = {
        "plain": value,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url-encoded": quote(value, safe=""),
        "hex": raw.hex(),
    }
    scheme, _, token = value.partition(" ")
    if token and scheme.lower() in ("bearer", "basic"):
        # The credential without its scheme is the secret part.
        forms.update({f"{name} of the token": form for name, form in _forms(token).items()})
    return forms


@dataclass
class Leaks:
    """``watch`` a secret once; ``scan`` every text a client or an operator could see."""

    watched: dict[str, dict[str, str]] = field(default_factory=dict)  # label -> form -> text
    found: list[str] = field(default_factory=list)
    scanned: int = 0

    def watch(self, label: str, value: str) -> None:
        assert len(value) >= 16, "a short secret could match by chance"
        self.watched[label] = _forms(value)

    def hits(self, text: str) -> list[str]:
        return [
            f"{label} ({form})"
            for label, forms in self.watched.items()
            for form, shown in forms.items()
            if shown in text
        ]

    def scan(self, where: str, text: str) -> None:
        self.scanned += 1
        self.found += [f"{where}: {hit}" for hit in self.hits(text)]


class Capture(logging.Handler):
    """Every record, formatted (traceback included) and with all its attributes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self._saved: list[tuple[logging.Logger, int, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # ``vars`` too: an ``extra`` field or an argument left out of the message is
        # output all the same by a structured formatter.
        self.records.append(record)
        self.texts.append(self.format(record) + "\n" + repr(vars(record)))

    def debug_everywhere(self) -> None:
        """Every logger that exists at DEBUG, enabled and heard; later ones inherit the root's."""
        root = logging.getLogger()
        for logger in [root, *_loggers()]:
            self._saved.append((logger, logger.level, logger.disabled))
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            if logger is root or not logger.propagate:  # uvicorn's keep to their handlers
                logger.addHandler(self)

    def restore(self) -> None:
        for logger, level, disabled in self._saved:
            logger.setLevel(level)
            logger.disabled = disabled
            logger.removeHandler(self)


def _loggers() -> list[logging.Logger]:
    return [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
