"""The MCP gateway's sans-IO pieces: names, relayed ids, cursors, allow lists, URI
templates."""

from __future__ import annotations

import pytest

from sluicegate.mcp.aggregate import Owners
from sluicegate.mcp.table import EVERYTHING, Allow
from sluicegate.mcp.wire import cursor, joined, offset_of, relay_id, split_name, unrelay_id


def test_names_split_at_the_first_separator() -> None:
    assert joined("tickets", "read__all") == "tickets__read__all"
    assert split_name("tickets__read__all") == ("tickets", "read__all")
    assert split_name("no_separator") is None
    assert split_name("__x") is None and split_name("x__") is None


@pytest.mark.parametrize("original", [5, "abc", "a__b", 0, "5"])
def test_relayed_ids_come_back_as_they_were(original: object) -> None:
    found = unrelay_id(relay_id("counter", original))
    assert found == ("counter", original)
    assert type(found[1]) is type(original)  # type: ignore[index]


def test_foreign_ids_are_not_taken_for_relayed_ones() -> None:
    assert unrelay_id(7) is None
    assert unrelay_id("counter__{not json") is None
    assert unrelay_id("plain") is None


def test_cursors() -> None:
    assert offset_of(cursor(200)) == 200
    for bad in ("", "not base64!", cursor(-1), 12, None, "eyJvIjoiMSJ9"):
        assert offset_of(bad) is None


def test_allow_lists_narrow_and_never_widen() -> None:
    consumer = Allow.of(["tickets", "files/read_*"])
    assert consumer.server("tickets") and consumer.server("files")
    assert not consumer.server("wiki")
    assert consumer.tool("tickets", "write_ticket")
    assert consumer.tool("files", "read_text") and not consumer.tool("files", "delete")
    key = consumer.narrowed(Allow.of(["files/*", "wiki"]))
    assert key.tool("files", "read_text") and not key.tool("files", "delete")
    assert not key.server("tickets") and not key.server("wiki")
    assert Allow.of(None) is EVERYTHING and EVERYTHING.tool("any", "thing")
    assert not Allow.of([]).server("tickets")  # an empty list allows nothing


def test_resources_are_routed_by_uri_and_template() -> None:
    owners = Owners()
    owners.learn("resources", "tickets", {"uri": "tickets://open"})
    owners.learn("resourceTemplates", "tickets", {"uriTemplate": "tickets://ticket/{id}"})
    owners.learn("resourceTemplates", "files", {"uriTemplate": "file:///{+path}"})
    assert owners.owner("tickets://open") == "tickets"
    assert owners.owner("tickets://ticket/42") == "tickets"
    assert owners.owner("tickets://ticket/42/more") is None  # a simple expression has no "/"
    assert owners.owner("file:///srv/a/b.txt") == "files"
    assert owners.owner("wiki://page") is None
