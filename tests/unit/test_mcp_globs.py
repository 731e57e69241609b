"""Allow-list globs: case-sensitive, and ``*``/``?`` never cross a control character."""

from __future__ import annotations

import pytest

from sluicegate.mcp.table import Allow


@pytest.mark.parametrize(
    ("item", "server", "tool", "allowed"),
    [
        ("tickets/read_*", "tickets", "read_a", True),
        ("tickets/read_*", "tickets", "Read_a", False),
        ("tickets/read_*", "tickets", "read_a\nwrite_b", False),
        ("tickets/read_*", "tickets", "read_\x00", False),
        ("tickets/read_*", "tickets", "read_a\x7f", False),
        ("tickets/read_?", "tickets", "read_\t", False),
        ("tickets/read_?", "tickets", "read_b", True),
        ("tickets/read_[ab]", "tickets", "read_b", True),
        ("tickets/read_[!ab]", "tickets", "read_\n", False),
        ("tickets/read_[!ab]", "tickets", "read_c", True),
        ("tick*/read_a", "tick\nets", "read_a", False),
        ("tickets", "tickets", "anything", True),
        ("tickets/read_[", "tickets", "read_[", True),
    ],
)
def test_globs(item: str, server: str, tool: str, allowed: bool) -> None:
    assert Allow.of([item]).tool(server, tool) is allowed
