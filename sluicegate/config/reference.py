"""The config file's field paths, with type and default, read off the config models.

docs/configuration.md's reference section has a row per path;
``tests/unit/test_config_reference.py`` compares the two, and
``scripts/config-reference.py`` prints the rows a new field needs.

Notation (also explained at the top of the reference section): ``a.b`` is field ``b`` of
object ``a``; ``a[]`` an item of list ``a``; ``a.<name>`` the value under any key of map
``a``. A model used at several places has its fields listed once, at its home path; the
other places get one row whose type says where (``object, as services[]``).
"""

from __future__ import annotations

import re
import types
import typing
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sluicegate.config.base import Name
from sluicegate.config.durations import parse_duration
from sluicegate.config.guardrails import GuardrailsPolicy
from sluicegate.config.model import Config, Credentials, Limits

# Where a shared model's fields are listed, when its first place (breadth first, in the
# order of the fields) is not where a reader looks for them.
HOMES: dict[type[BaseModel], str] = {
    Credentials: "services[].credentials",
    Limits: "consumers[].limits[]",
    GuardrailsPolicy: "rules[].policies.guardrails",
}


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str


def _validators(info: FieldInfo | None, tp: Any) -> list[Any]:
    """The functions of a field's validators, its own and those inside its annotation."""
    found = [getattr(m, "func", None) for m in (info.metadata if info is not None else [])]
    stack = [tp]
    while stack:
        node = stack.pop()
        if typing.get_origin(node) is typing.Annotated:
            found += [getattr(m, "func", None) for m in node.__metadata__]
            stack.append(typing.get_args(node)[0])
        elif _is_union(node):
            stack += typing.get_args(node)
    return found


def _is_duration(info: FieldInfo | None, tp: Any = None) -> bool:
    return parse_duration in _validators(info, tp)


def _one_or_many(info: FieldInfo) -> bool:
    # A list field that also takes a single item (``model._one_or_many``).
    return any(getattr(f, "__name__", "") == "_one_or_many" for f in _validators(info, None))


def _strip_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if _is_union(tp) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model(tp: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


class _Walk:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.home: dict[type[BaseModel], str] = dict(HOMES)
        self.queue: deque[tuple[str, type[BaseModel]]] = deque()

    def run(self, root: type[BaseModel]) -> list[Row]:
        self.queue.append(("", root))
        while self.queue:
            prefix, model = self.queue.popleft()
            for name, info in model.model_fields.items():
                self.add(f"{prefix}{name}", info)
        return self.rows

    def add(self, path: str, info: FieldInfo) -> None:
        self.rows.append(Row(path, self.type_of(path, info.annotation, info), _default(info)))

    def type_of(self, path: str, tp: Any, info: FieldInfo | None = None) -> str:
        """The type's name; a model met first here is queued, its fields listed below."""
        if _is_duration(info, tp):
            return "duration"
        tp = _strip_optional(_unwrap(tp))
        model = _model(tp)
        if model is not None:
            home = self.home.setdefault(model, path)
            if home == path:
                self.queue.append((f"{path}.", model))
                return "object"
            return f"object, as `{home}`"
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is list:
            item = _plural(self.type_of(f"{path}[]", args[0]))
            if info is not None and _one_or_many(info) and item.startswith("objects"):
                return "object or list of " + item
            return "list of " + item
        if origin is dict:
            return "map of " + _plural(self.type_of(f"{path}.<name>", args[1]))
        if origin is Literal:
            return " \\| ".join(str(a) for a in args)
        if _is_union(tp):
            return " or ".join(self.type_of(path, a) for a in args)
        if tp is str:
            return "name" if info is not None and _is_name(info) else "string"
        return {int: "integer", float: "number", bool: "boolean"}.get(tp, "any")


_PLURALS = {"object": "objects", "string": "strings", "name": "names", "integer": "integers"}
_PLURALS |= {"number": "numbers", "boolean": "booleans", "duration": "durations"}


def _plural(kind: str) -> str:
    """``object, as x`` → ``objects, as x``; ``integer or string`` → ``integers or strings``."""
    head, sep, rest = kind.partition(",")
    return " or ".join(_PLURALS.get(p, p) for p in head.split(" or ")) + sep + rest


_NAME_PATTERN = next(
    m.pattern for m in typing.get_args(Name)[1].metadata if getattr(m, "pattern", None)
)


def _is_name(info: FieldInfo) -> bool:
    return any(getattr(m, "pattern", None) == _NAME_PATTERN for m in info.metadata)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "{}"
    if _is_duration(info, info.annotation) and isinstance(value, int | float):
        return format_seconds(float(value))
    return _literal(value)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value == "":
        return '""'
    return str(value)


def format_seconds(seconds: float) -> str:
    """A duration as a config file would write it: ``50ms``, ``30s``, ``10m``, ``30d``."""
    if seconds == 0:
        return "0"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000):g}ms" if seconds < 1 else f"{seconds:g}s"


def rows(root: type[BaseModel] = Config) -> list[Row]:
    """Every field path of the config file, breadth first."""
    return _Walk().run(root)


def format_row(row: Row, meaning: str = "") -> str:
    return f"| `{row.path}` | {row.type} | `{row.default}` | {meaning} |"


REFERENCE_HEADING = "## Reference"
TABLE_HEADER = "| path | type | default | meaning |"
_CELL = re.compile(r"(?<!\\)\|")


def documented(markdown: str) -> list[tuple[int, list[str]]]:
    """The rows of the reference section's field tables (those under ``TABLE_HEADER``):
    (line number, cells)."""
    found = []
    inside = in_table = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.startswith("## "):
            inside = line.strip() == REFERENCE_HEADING
        if not line.startswith("|"):
            in_table = False
        elif line.strip() == TABLE_HEADER:
            in_table = inside
        elif in_table and not line.startswith("| ---"):
            found.append((number, [c.strip() for c in _CELL.split(line.strip())[1:-1]]))
    return found


@dataclass
class Drift:
    """How a reference section differs from the models; empty when it does not."""

    missing: list[Row] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # "line N: `path`"
    wrong: list[str] = field(default_factory=list)  # "line N: ... expected row"

    def __bool__(self) -> bool:
        return bool(self.missing or self.stale or self.wrong)


def compare(markdown: str, root: type[BaseModel] = Config) -> Drift:
    expected = {row.path: row for row in rows(root)}
    drift = Drift()
    seen: set[str] = set()
    for number, cells in documented(markdown):
        if len(cells) != 4:
            drift.wrong.append(f"line {number}: a row has 4 cells (path, type, default, meaning)")
            continue
        path = cells[0].strip("`")
        row = expected.get(path)
        if row is None:
            drift.stale.append(f"line {number}: `{path}`")
        elif path in seen:
            drift.wrong.append(f"line {number}: `{path}` has a row already; keep one")
        elif cells[1] != row.type or cells[2] != f"`{row.default}`" or not cells[3]:
            drift.wrong.append(f"line {number}: should read {format_row(row, cells[3] or '…')}")
        seen.add(path)
    drift.missing = [row for path, row in expected.items() if path not in seen]
    return drift
