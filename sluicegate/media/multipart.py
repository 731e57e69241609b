"""The head of a ``multipart/form-data`` body, read as it arrives (sans-IO).

The media uploads (``/v1/images/edits``, ``/v1/audio/transcriptions``, …) are routed by their
``model`` field, which sits somewhere in the body. The official SDKs write every plain field
before the files, so the gateway reads only that head: its small fields, up to the first
file part after ``model``. The head is held (and may be rewritten: a rule's target model);
what follows it is streamed on untouched. A client that puts ``model`` after its files has
its body held until ``model`` is found, which ``max_body_bytes`` bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sluicegate.errors import InvalidRequest

_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION = re.compile(rb"^content-disposition:([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(rb'(?:^|;)\s*name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb"(?:^|;)\s*filename\*?=", re.IGNORECASE)
_FILENAME_VALUE = re.compile(rb'(?:^|;)\s*filename="([^"]*)"', re.IGNORECASE)
# The values an array field (``timestamp_granularities[]``, ``include[]``) may repeat: the
# words of an enumeration, nothing a guardrail would need to read.
_LISTED_VALUE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CONTENT_TYPE = re.compile(rb"^content-type:[ \t]*([^\r\n;]+)", re.IGNORECASE | re.MULTILINE)
_MAX_FIELD = 64 * 1024  # a plain field longer than this is not kept (a prompt is far shorter)


def boundary_of(content_type: bytes) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; a 400 for anything else."""
    if not content_type.lower().startswith(b"multipart/form-data"):
        raise InvalidRequest("This endpoint takes a multipart/form-data body.")
    found = _BOUNDARY.search(content_type)
    if found is None or not 1 <= len(found.group(1)) <= 70:
        raise InvalidRequest("The multipart/form-data body names no boundary.")
    return found.group(1).strip()


@dataclass(frozen=True, slots=True)
class FormFile:
    name: str  # the field's name: image, image[], mask, file
    filename: str
    content_type: str
    data: bytes


class FormHead:
    """Fed the body's bytes in order; ``done`` once ``model`` was read and the next file part
    (or the end) was reached. ``fields`` holds the plain fields read so far. With ``whole``,
    it reads on to the end and keeps each file (``uploads``): a provider whose API takes the
    files inside JSON needs them all."""

    def __init__(self, boundary: bytes, whole: bool = False) -> None:
        self.whole = whole
        self.uploads: list[FormFile] = []
        self.delimiter = b"--" + boundary
        self.buffer = bytearray()
        self.fields: dict[str, str] = {}
        self.files: list[str] = []  # the names of the file parts read past
        self.done = False
        self.ended = False  # the closing delimiter was read
        self._pos = 0  # where the next part's delimiter is looked for
        self._spans: dict[str, tuple[int, int]] = {}  # each plain field's value in the buffer

    @property
    def model(self) -> str | None:
        return self.fields.get("model")

    @property
    def unread(self) -> bytes:
        """The bytes held past the last part read (from the line break before its
        delimiter): they go on with the head, unread, so ``FormTail`` must see them."""
        return bytes(self.buffer[max(0, self._pos - 2) :]) if not self.ended else b""

    def feed(self, data: bytes) -> bool:
        self.buffer += data
        while not self.done and self._part():
            pass
        return self.done

    def _part(self) -> bool:
        """Read one more part when the buffer holds it whole; False: more bytes needed."""
        buffer, delimiter = self.buffer, self.delimiter
        start = buffer.find(delimiter, self._pos)
        if start < 0:
            return False
        after = start + len(delimiter)
        if len(buffer) < after + 2:
            return False
        if buffer[after : after + 2] == b"--":
            self.done = self.ended = True
            self._pos = start
            return False
        heads_end = buffer.find(b"\r\n\r\n", after)
        if heads_end < 0:
            if len(buffer) - after > 16 * 1024:
                raise InvalidRequest(
                    "A part of the multipart/form-data body has no end of headers."
                )
            return False
        heads = bytes(buffer[after:heads_end])
        name, is_file = part_name(heads)
        if is_file and self.model is not None and not self.whole:
            self.done = True
            self._pos = start
            return False
        content = heads_end + 4
        end = buffer.find(b"\r\n" + delimiter, content)
        if end < 0:
            return False
        if is_file:
            self.files.append(name)
            if self.whole:
                self.uploads.append(_file(name, heads, bytes(buffer[content:end])))
        else:
            self._field(name, content, end)
        self._pos = end + 2
        return True

    def _field(self, name: str, content: int, end: int) -> None:
        """A plain field: kept once, whole, so that what routes, prices and is screened is
        every value the provider will read (a form parser may take the first of two)."""
        if end - content > _MAX_FIELD:
            raise InvalidRequest(
                f"The form field '{name}' is longer than {_MAX_FIELD} bytes.", param=name
            )
        value = bytes(self.buffer[content:end]).decode("utf-8", "replace")
        if name in self.fields:
            if not name.endswith("[]"):
                raise InvalidRequest(f"The form repeats the field '{name}'.", param=name)
            for each in (self.fields[name], value):
                if not _LISTED_VALUE.fullmatch(each):
                    raise InvalidRequest(
                        f"The repeated form field '{name}' takes words such as 'word' or "
                        "'segment'.",
                        param=name,
                    )
            return
        self.fields[name] = value
        self._spans[name] = (content, end)

    def head(self, values: dict[str, str] | None = None) -> bytes:
        """Every byte read so far, with the plain fields named in ``values`` given those
        values (the rule's target model, a prompt the guardrails redacted)."""
        changes = sorted(
            (self._spans[name], value)
            for name, value in (values or {}).items()
            if name in self._spans and self.fields.get(name) != value
        )
        if not changes:
            return bytes(self.buffer)
        out, at = bytearray(), 0
        for (start, end), value in changes:
            out += self.buffer[at:start]
            out += value.encode()
            at = end
        out += self.buffer[at:]
        return bytes(out)


def part_name(heads: bytes) -> tuple[str, bool]:
    """A part's field name and whether it is a file, from its Content-Disposition alone."""
    found = _DISPOSITION.search(heads)
    disposition = found.group(1) if found else b""
    name = _NAME.search(disposition)
    return (
        name.group(1).decode("utf-8", "replace") if name else "",
        _FILENAME.search(disposition) is not None,
    )


class FormTail:
    """Watches the bytes after a form's head as they stream on: they may hold only file
    parts. A plain field there was never routed, priced or screened (a second ``model``, a
    prompt), so it ends the upload with a 400 rather than reach the provider."""

    def __init__(self, delimiter: bytes) -> None:
        self.marker = b"\r\n" + delimiter
        self.carry = b""

    def feed(self, chunk: bytes) -> None:
        data = self.carry + chunk
        at = 0
        while True:
            found = data.find(self.marker, at)
            if found < 0:
                break
            heads_end = data.find(b"\r\n\r\n", found + len(self.marker))
            if heads_end < 0:
                if len(data) - found > 16 * 1024:
                    raise InvalidRequest(
                        "A part of the multipart/form-data body has no end of headers."
                    )
                data, at = data[found:], 0
                self.carry = data
                return
            heads = data[found + len(self.marker) : heads_end]
            if not heads.startswith(b"--"):  # the closing delimiter ends the form
                name, is_file = part_name(heads)
                if not is_file:
                    raise InvalidRequest(
                        f"The form field '{name}' comes after a file: write every plain "
                        "field before the files (as the SDKs do).",
                        param=name or None,
                    )
            at = heads_end + 4
        self.carry = data[max(at, len(data) - len(self.marker) - 4) :]


def _file(name: str, heads: bytes, data: bytes) -> FormFile:
    disposition = _DISPOSITION.search(heads)
    filename = _FILENAME_VALUE.search(disposition.group(1)) if disposition else None
    kind = _CONTENT_TYPE.search(heads)
    return FormFile(
        name,
        filename.group(1).decode("utf-8", "replace") if filename else "",
        kind.group(1).decode("latin-1").strip().lower() if kind else "application/octet-stream",
        data,
    )


def read_form(boundary: bytes, body: bytes) -> FormHead:
    """A whole form, read: its plain fields and its files."""
    form = FormHead(boundary, whole=True)
    form.feed(body)
    if not form.ended:
        raise InvalidRequest("The multipart/form-data body has no closing boundary.")
    return form
