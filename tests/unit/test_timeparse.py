"""Times and durations typed by people: what parses, and messages whose examples parse too."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from jobsched.errors import UsageError
from jobsched.timeparse import parse_duration, parse_when

#: An ISO 8601 time with a zone, as messages write their examples.
SUGGESTED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})")

BAD_TIMES = [
    "2026-12-24",
    "20261224",
    "2026-12-24Z",
    "2026-12-24+01:00",
    "2026-12-24+0100",
    "2026-12-24-05",
    "2026-12-24+25:00",
    "2026-13-45",
    "2026-12-24T09:00",
    "2026-12-24T09",
    "2026-12-24 09:00:00",
    "2026-W52",
    "20261224T0900",
    "9999-12-31T23:59:59.999999",
    "next tuesday",
    "",
    "2026-12-24T25:00:00Z",
]


def refusal(text: str) -> str:
    with pytest.raises(UsageError) as raised:
        parse_when(text)
    return str(raised.value)


@pytest.mark.parametrize("text", BAD_TIMES)
def test_every_example_a_time_message_suggests_parses(text: str) -> None:
    message = refusal(text)
    examples = SUGGESTED_TIME.findall(message.replace(repr(text), "the input"))
    assert examples, message
    for example in examples:
        when = parse_when(example)
        assert when.utcoffset() is not None


def test_a_date_without_a_time_gets_a_full_example_on_that_date() -> None:
    message = refusal("2026-12-24")
    assert "without a time of day" in message
    assert "2026-12-24T00:00:00Z" in message
    assert parse_when("2026-12-24T00:00:00Z") == datetime(2026, 12, 24, tzinfo=UTC)


def test_a_date_with_a_zone_is_told_to_add_the_time_not_the_zone() -> None:
    message = refusal("2026-12-24+01:00")
    assert "no time zone" not in message
    assert "add one" not in message
    assert "no time of day" in message
    [example] = SUGGESTED_TIME.findall(message)
    assert example == "2026-12-24T00:00:00+01:00"


def test_a_time_without_a_zone_keeps_its_time_in_the_examples() -> None:
    message = refusal("2026-11-23T09:30")
    assert "no time zone" in message
    assert SUGGESTED_TIME.findall(message) == ["2026-11-23T09:30:00Z", "2026-11-23T09:30:00+01:00"]


def test_every_example_the_duration_message_suggests_parses() -> None:
    with pytest.raises(UsageError) as raised:
        parse_duration("5x")
    examples = re.findall(r"\b\d+[smhdw](?:\d+[smhdw])*\b", str(raised.value))
    assert len(examples) >= 5
    for example in examples:
        assert parse_duration(example) > timedelta(0)


def test_a_duration_too_long_for_timedelta_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="too long"):
        parse_duration("99999999999999w")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T09:00:00Z", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        ("2026-11-23T10:00:00+01:00", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        (" 2026-11-23T09:00Z ", datetime(2026, 11, 23, 9, tzinfo=UTC)),
    ],
)
def test_a_time_with_a_zone_parses(text: str, expected: datetime) -> None:
    assert parse_when(text) == expected
