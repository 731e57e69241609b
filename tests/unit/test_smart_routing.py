"""The pure parts of smart routing: conditions, facts, the catalog, the statistics."""

from __future__ import annotations

import datetime as dt

import pytest

from sluicegate.config.routing import When, parse_hours
from sluicegate.providers.models import ModelCatalog, Override
from sluicegate.routing.conditions import compile_when, short
from sluicegate.routing.facts import Facts, last_user_text
from sluicegate.routing.smart import header_value
from sluicegate.routing.stats import ArmStats


def facts(**body: object) -> Facts:
    return Facts({"messages": [{"role": "user", "content": "hi"}], **body}, [], "team-a")


@pytest.mark.parametrize(
    ("window", "hour", "minute", "inside"),
    [
        ("09-17", 9, 0, True),
        ("09-17", 16, 59, True),
        ("09-17", 17, 0, False),
        ("22:30-06:00", 23, 0, True),
        ("22:30-06:00", 5, 59, True),
        ("22:30-06:00", 6, 0, False),
        ("22:30-06:00", 22, 29, False),
    ],
)
def test_hours_windows_cross_midnight(window: str, hour: int, minute: int, inside: bool) -> None:
    at = dt.datetime(2026, 1, 5, hour, minute, tzinfo=dt.UTC)
    condition = compile_when(When(hours=window), now=lambda: at)
    assert (condition.holds(facts()) is not None) is inside


def test_hours_read_in_the_named_zone() -> None:
    at = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC)  # 09:30 in Paris (winter)
    paris = compile_when(When(hours="09-10", timezone="Europe/Paris"), now=lambda: at)
    utc = compile_when(When(hours="09-10"), now=lambda: at)
    assert paris.holds(facts()) == "hours 09-10 Europe/Paris"
    assert utc.holds(facts()) is None


@pytest.mark.parametrize("bad", ["9 to 5", "25-26", "09:61-10", "10-10"])
def test_bad_windows_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(bad)


def test_every_condition_of_a_when_must_hold_and_says_why() -> None:
    when = When.model_validate({"has_tools": True, "user": ["vip-*"], "prompt_tokens": {"lt": 100}})
    condition = compile_when(when)
    tool = {"type": "function", "function": {"name": "f"}}
    assert (
        condition.holds(facts(tools=[tool], user="vip-3"))
        == "prompt 8 < 100, has tools, user ~ vip-*"
    )
    assert condition.holds(facts(tools=[tool], user="guest")) is None
    assert compile_when(When()).holds(facts()) == "always"


def test_facts_find_images_tools_and_json_modes() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    f = facts(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, image]}])
    assert f.has_images and not f.has_tools and not f.json_mode
    schema = facts(response_format={"type": "json_schema", "json_schema": {}})
    assert schema.json_schema and schema.json_mode
    assert facts(response_format={"type": "json_object"}).json_mode
    assert not facts(response_format={"type": "json_object"}).json_schema
    assert facts(max_tokens=77).output_tokens == 77


def test_the_last_user_text_is_what_semantic_routes_read() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ]
    }
    assert last_user_text(body) == "second"


def test_short_token_counts() -> None:
    assert [short(n) for n in (999, 1000, 2500, 41234)] == ["999", "1k", "2.5k", "41k"]


def test_the_words_name_patterns_never_the_clients_values() -> None:
    when = When.model_validate({"metadata": {"email": "*@example.com"}, "user": "*"})
    said = compile_when(when).holds(facts(metadata={"email": "ann@example.com"}, user="ann"))
    assert said == "metadata.email ~ *@example.com, user ~ *"


def test_the_route_header_is_printable_ascii() -> None:
    assert header_value("route x (metadata.a=\u00e9t\u00e9\r\n)") == b"route x (metadata.a=?t???)"


def test_catalog_overrides_keep_what_they_do_not_set() -> None:
    catalog = ModelCatalog([("gpt-4o-mini", Override(input=0.5)), ("mine", Override(1, 2, 3, 4))])
    info = catalog.info("gpt-4o-mini-2024-07-18")
    assert info is not None and info.price is not None
    assert (info.price.input, info.price.output, info.context_window) == (0.5, 0.60, 128_000)
    assert info.able("vision") and info.source == "file"
    mine = catalog.info("mine")
    assert mine is not None and mine.price is not None
    assert (mine.context_window, mine.max_output, mine.price.input) == (1, 2, 3.0)
    assert mine.capabilities is None and mine.able("audio")  # unknown: assumed able


def test_a_pricing_entry_replaces_the_whole_price() -> None:
    catalog = ModelCatalog([("gpt-4o", Override(input=1.0, output=2.0, whole_price=True))])
    info = catalog.info("gpt-4o")
    assert info is not None and info.price is not None
    assert info.price.cached_input is None  # not the built-in 1.25


def test_latency_forgets_with_time() -> None:
    arm = ArmStats()
    arm.observe(1.0, now=100.0)
    arm.observe(1.0, now=100.1)
    arm.observe(0.01, now=100.2)  # right after: one sample moves it by the floor weight
    assert arm.latency is not None and 0.6 < arm.latency < 0.8
    arm.observe(0.01, now=103.0)  # after a quiet while: one good sample redeems it
    assert arm.latency is not None and arm.latency < 0.06
    arm.failed(5.0, now=104.0, timeout=True, retry_after=None)
    assert arm.latency is not None and arm.latency > 3 and arm.answers == 4
    arm.failed(0.1, now=105.0, timeout=False, retry_after=7)
    assert arm.limited_until == 112.0 and arm.failures == 2
