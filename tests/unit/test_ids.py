"""The ids the gateway makes for requests and audit rows: UUIDv7, ordered by time."""

from __future__ import annotations

import itertools
import time
import uuid

from sluicegate.telemetry.ids import ordered_id


def test_an_id_is_a_uuid7_in_32_hex_digits() -> None:
    value = ordered_id()
    assert len(value) == 32 and value == value.lower()
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_an_id_starts_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = ordered_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(value[:12], 16) <= after


def test_ids_made_later_sort_later_and_never_repeat() -> None:
    made = []
    for _ in range(5):
        made.append([ordered_id() for _ in range(200)])
        time.sleep(0.002)
    # Within a millisecond the order is random; across milliseconds it follows the clock.
    for earlier, later in itertools.pairwise(made):
        assert max(earlier) < min(later)
    flat = [value for batch in made for value in batch]
    assert len(set(flat)) == len(flat)
    # The random part varies: the bits after the time are not a constant.
    assert len({value[13:] for value in flat}) == len(flat)
