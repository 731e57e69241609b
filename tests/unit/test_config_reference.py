"""docs/configuration.md's reference section has one row per field of the config file,
with the type and default the models give it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from sluicegate.config.base import Duration, Strict
from sluicegate.config.reference import compare, format_row, rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_lists_every_field_as_the_models_declare_it() -> None:
    drift = compare(DOC.read_text(encoding="utf-8"))
    message = [
        "docs/configuration.md, section '## Reference', is out of date with the config models."
    ]
    if drift.missing:
        message.append(
            "Fields without a row: add each row to the table of its section and write its "
            "meaning (`python scripts/config-reference.py` prints them, type and default "
            "filled in):"
        )
        message += [f"  {format_row(row, '<meaning>')}" for row in drift.missing]
    if drift.stale:
        message.append(
            "Rows of fields the models no longer have: delete them (or rename the path):"
        )
        message += [f"  {line}" for line in drift.stale]
    if drift.wrong:
        message.append("Rows whose type or default differ from the models, or lack a meaning:")
        message += [f"  {line}" for line in drift.wrong]
    if drift:
        pytest.fail("\n".join(message), pytrace=False)


class Leaf(Strict):
    wait: Duration | None = None
    size: int = 3


class Branch(Strict):
    name: str
    leaves: list[Leaf] = Field(default_factory=list)
    by_key: dict[str, Leaf] = Field(default_factory=dict)
    one: Leaf | None = None
    kind: int | list[str] = 1


def test_the_walk_reaches_into_lists_maps_and_unions_and_lists_a_model_once() -> None:
    got = {row.path: (row.type, row.default) for row in rows(Branch)}
    assert got == {
        "name": ("string", "required"),
        "leaves": ("list of objects", "[]"),
        "by_key": ("map of objects, as `leaves[]`", "{}"),
        "one": ("object, as `leaves[]`", "unset"),
        "kind": ("integer or list of strings", "1"),
        "leaves[].wait": ("duration", "unset"),
        "leaves[].size": ("integer", "3"),
    }


def test_a_missing_a_stale_and_a_wrong_row_are_each_named() -> None:
    doc = "\n".join(
        [
            "## Reference",
            "| path | type | default | meaning |",
            "| --- | --- | --- | --- |",
            "| `name` | string | `required` | what it is called |",
            "| `leaves` | list of objects | `unset` | the leaves |",
            "| `gone` | string | `unset` | a field of old |",
            "| `leaves[].wait` | duration | `unset` | how long |",
            "| `leaves[].size` | integer | `3` |  |",
            "",
            "| notation | means |",
            "| --- | --- |",
            "| `a.b` | another table, not read |",
            "## Next",
            "| `by_key` | outside the section, not read | | |",
        ]
    )
    drift = compare(doc, Branch)
    assert [row.path for row in drift.missing] == ["by_key", "one", "kind"]
    assert drift.stale == ["line 6: `gone`"]
    assert drift.wrong == [
        "line 5: should read | `leaves` | list of objects | `[]` | the leaves |",
        "line 8: should read | `leaves[].size` | integer | `3` | … |",
    ]
