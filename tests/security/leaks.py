"""Watch secrets and search text for them, and for their obvious encodings."""

from __future__ import annotations

import base64
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
