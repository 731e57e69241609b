#!/usr/bin/env python3
"""Rows for docs/configuration.md's reference section, read off the config models.

    python scripts/config-reference.py          the rows the section lacks, type and
                                                default filled in: write the meaning,
                                                paste each into its section's table
    python scripts/config-reference.py --all    every row, in the models' order
    python scripts/config-reference.py --check  what differs; exit 1 if anything does

tests/unit/test_config_reference.py fails on the same differences.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sluicegate.config.reference import compare, format_row, rows  # noqa: E402

DOC = ROOT / "docs" / "configuration.md"


def main(argv: list[str]) -> int:
    if "--all" in argv:
        for row in rows():
            print(format_row(row))
        return 0
    drift = compare(DOC.read_text(encoding="utf-8"))
    for row in drift.missing:
        print(format_row(row))
    if "--check" in argv:
        for line in drift.stale:
            print(f"no longer a field, delete: {line}", file=sys.stderr)
        for line in drift.wrong:
            print(line, file=sys.stderr)
        return 1 if drift else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
