"""Text as a reader sees it, for matching: NFKC, without format characters; and the way back
from a span of that text to the span of the original it came from.

An address in full-width letters, or with a zero-width space inside
(``jane@exa\\u200bmple.com``), reads as ``jane@example.com``; a pattern run over the
raw text would miss both. The patterns run over the folded text, and each finding is
mapped back so that the rewrite replaces exactly the original characters it was read
from, invisible ones inside it included.

Characters that fold to one character each (full-width forms, the CJK punctuation among
them, styled mathematical letters, odd spaces) are translated in place, which keeps every
offset. Only the rest is kept as changes: a format character (dropped), or a character
that NFKC rewrites to more or fewer characters, with the ones it composes with. ASCII
text, and text that is already folded, is its own fold and costs one check.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass

import regex

# Blocks whose characters mostly fold to one character each: Latin-1 (no-break space),
# general punctuation (spaces, hyphens), enclosed numbers, CJK symbols and punctuation,
# CJK compatibility forms, half- and full-width forms, mathematical letters and digits.
_ONE_TO_ONE_BLOCKS = (
    (0x00A0, 0x00FF),
    (0x2000, 0x206F),
    (0x2460, 0x24FF),
    (0x3000, 0x303F),
    (0xFE30, 0xFE6F),
    (0xFF00, 0xFFEF),
    (0x1D400, 0x1D7FF),
)


def _one_to_one() -> dict[int, str]:
    table: dict[int, str] = {}
    for low, high in _ONE_TO_ONE_BLOCKS:
        for code in range(low, high + 1):
            char = chr(code)
            new = unicodedata.normalize("NFKC", char)
            if len(new) == 1 and new != char and unicodedata.category(char) != "Cf":
                table[code] = new
    return table


_TRANSLATE = _one_to_one()

# Zero-width spaces and joiners, soft hyphens, word joiners, bidirectional controls, BOMs.
_FORMAT = regex.compile(r"\p{Cf}")
# Runs of format characters (group 1), or of characters NFKC rewrites or may compose with
# the character before them, which group 2 marks when the run begins with one. Kept this
# simple, the regex module scans it fast.
_RUNS = regex.compile(r"(\p{Cf}+)|(?:(\p{NFKC_QC=M})|\p{NFKC_QC=N})\P{NFKC_QC=Y}*")


@dataclass(frozen=True, slots=True)
class Folded:
    """``text`` folded from ``original``; ``changes`` holds, in order, each piece whose length
    changed: (start, end) in ``text``, then (start, end) in ``original``. Elsewhere a
    character of ``text`` stands where its original does (offsets shifted by the changes
    before it)."""

    text: str
    original: str
    changes: tuple[tuple[int, int, int, int], ...] = ()
    starts: tuple[int, ...] = ()  # each change's start in ``text``
    origins: tuple[int, ...] = ()  # each change's start in ``original``

    def start(self, i: int) -> int:
        """Where in the original the folded character ``i`` begins (its length: the end)."""
        if not self.changes:
            return i
        if i >= len(self.text):
            return len(self.original)
        k = bisect.bisect_right(self.starts, i) - 1
        if k < 0:
            return i
        _, fe, os, oe = self.changes[k]
        return os if i < fe else oe + (i - fe)

    def end(self, i: int) -> int:
        """Where in the original the folded text up to ``i`` (exclusive) ends."""
        if not self.changes or i <= 0:
            return i
        last = i - 1
        k = bisect.bisect_right(self.starts, last) - 1
        if k < 0:
            return i
        _, fe, _, oe = self.changes[k]
        return oe if last < fe else oe + (last - fe) + 1

    def index(self, position: int) -> int:
        """The first folded character that begins at ``position`` of the original or later."""
        if not self.changes:
            return position
        k = bisect.bisect_right(self.origins, position) - 1
        if k < 0:
            return position
        fs, fe, os, oe = self.changes[k]
        if position < oe:
            return fs if position == os else fe
        return fe + (position - oe)


def fold(text: str) -> Folded:
    if text.isascii():
        return Folded(text, text)
    original = text
    text = text.translate(_TRANSLATE)  # offsets stay: ``changes`` need not say anything
    if unicodedata.is_normalized("NFKC", text) and _FORMAT.search(text) is None:
        return Folded(text, original)
    out: list[str] = []
    changes: list[tuple[int, int, int, int]] = []
    last = 0  # the end of what the changes so far cover, in ``text``
    length = 0  # the folded text's length so far
    for m in _RUNS.finditer(text):
        start, end = m.span()
        if m.group(1) is not None:  # format characters are dropped
            pieces = [(start, end, "")]
        else:
            if m.group(2) is not None and start > last:  # composes with the one before it
                start -= 1
            run = text[start:end]
            new = unicodedata.normalize("NFKC", run)
            if new == run:
                continue
            pieces = [(start, end, new)] if end - start == 1 else _pieces(text, start, end, new)
        for piece_start, piece_end, piece in pieces:
            out.append(text[last:piece_start])
            length += piece_start - last
            changes.append((length, length + len(piece), piece_start, piece_end))
            out.append(piece)
            length += len(piece)
            last = piece_end
    if not changes:
        return Folded(text, original)
    out.append(text[last:])
    starts = tuple(c[0] for c in changes)
    origins = tuple(c[2] for c in changes)
    return Folded("".join(out), original, tuple(changes), starts, origins)


def _pieces(text: str, start: int, end: int, new: str) -> list[tuple[int, int, str]]:
    """The pieces of a run folded to ``new`` that change, each mapping back to its own
    characters: a character with the combining marks after it, when the run folds to
    ``new`` that way; else the whole run as one piece (a match that begins inside it then
    takes all of it)."""
    pieces: list[tuple[int, int, str]] = []
    begin = start
    for i in range(start + 1, end + 1):
        if i == end or not unicodedata.combining(text[i]):
            pieces.append((begin, i, unicodedata.normalize("NFKC", text[begin:i])))
            begin = i
    if "".join(piece for _, _, piece in pieces) != new:
        return [(start, end, new)]
    return [(s, e, piece) for s, e, piece in pieces if piece != text[s:e]]


def folded(text: str) -> str:
    """Just the folded text (to compare a value with what was found)."""
    return fold(text).text
