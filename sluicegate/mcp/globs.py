"""Allow-list globs (``read_*``, ``get_?``, ``[abc]``): case-sensitive, and a wildcard
never matches a control character, so that ``read_*`` cannot stretch over a newline or a
NUL into another name a lenient server would take apart."""

from __future__ import annotations

import re

Pattern = re.Pattern[str]

_CONTROL = "\\x00-\\x1f\\x7f"
_ANY = f"[^{_CONTROL}]"


def glob(pattern: str) -> Pattern:
    """``pattern`` as a regular expression to ``fullmatch`` names with."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(_ANY + "*")
        elif c == "?":
            out.append(_ANY)
        elif c == "[":
            end = pattern.find("]", i + 1 if pattern[i : i + 1] in ("!", "]") else i)
            if end < 0:
                out.append(re.escape(c))  # no closing bracket: a bracket of the name
                continue
            members = pattern[i:end]
            i = end + 1
            negated = members.startswith("!")
            members = members[1:] if negated else members
            body = members.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^{body}{_CONTROL}]" if negated else f"(?![{_CONTROL}])[{body}]")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out))
