"""Durations written the way operators write them: ``250ms``, ``30s``, ``5m``, ``1h30m``, ``7d``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; a bare number is already seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for part in _PART.finditer(text):
                if part.start() != pos:
                    break
                seconds += float(part.group(1)) * _UNITS[part.group(2)]
                pos = part.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"'{value}' is not a duration (seconds, or e.g. 500ms, 30s, 5m, 1h, 1d)"
                ) from None
    else:
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """OpenAI's reset form: ``1s``, ``250ms``, ``6m0s``, ``1h2m3s``."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 0)}ms"
    total = int(seconds + 0.999)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
