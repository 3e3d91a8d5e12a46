"""Hours and durations (bridge/hours.py): wall-clock windows across daylight-saving changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.hours import Hours, HoursError, duration

MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=200, deadline=None)


def brussels(spec: str) -> Hours:
    return Hours.parse(spec, "Europe/Brussels")


def test_weekday_hours() -> None:
    hours = Hours.parse("Mon-Fri 08:00-18:00")
    assert hours.contains(MONDAY_9)
    assert hours.contains(MONDAY_9.replace(hour=8))
    assert not hours.contains(MONDAY_9.replace(hour=18))  # the end is not in the window
    assert not hours.contains(MONDAY_9 - timedelta(days=1))  # Sunday
    assert hours.contains(MONDAY_9 + timedelta(days=4))  # Friday
    assert not hours.contains(MONDAY_9 + timedelta(days=5))


def test_day_lists_several_specs_and_whole_days() -> None:
    hours = Hours.parse(["Sat,Sun 10:00-14:00", "Wed"])
    saturday = MONDAY_9 + timedelta(days=5)
    assert hours.contains(saturday.replace(hour=10))
    assert not hours.contains(saturday.replace(hour=14))
    assert hours.contains(MONDAY_9 + timedelta(days=2, hours=14))  # all of Wednesday
    assert not hours.contains(MONDAY_9)
    assert Hours.parse("Sat,Sun 10:00-14:00; Wed").windows == hours.windows
    assert Hours.parse("mon - fri 8:00-12:00,13:00-17:00").contains(MONDAY_9)
    assert not Hours.parse("Monday 8:00-12:00,13:00-17:00").contains(MONDAY_9.replace(hour=12))
    assert Hours.parse("Fri-Mon").contains(MONDAY_9)  # a day range may wrap over the weekend
    assert Hours.parse("00:00-24:00").contains(MONDAY_9.replace(hour=23, minute=59))


def test_an_overnight_range_belongs_to_the_day_it_starts() -> None:
    hours = Hours.parse("Fri 22:00-06:00")
    friday = datetime(2026, 12, 11, tzinfo=UTC)
    assert hours.contains(friday.replace(hour=23))
    assert hours.contains(friday + timedelta(days=1, hours=5, minutes=59))  # Saturday 05:59
    assert not hours.contains(friday + timedelta(days=1, hours=6))
    assert not hours.contains(friday.replace(hour=5))  # Friday morning is Thursday's night
    assert not hours.contains(friday + timedelta(days=1, hours=23))


def test_hours_follow_wall_clock_time_across_daylight_saving() -> None:
    office = brussels("Mon-Sun 08:00-18:00")
    # 2026-03-29 02:00 CET -> 03:00 CEST: 08:00 is 07:00 UTC the day before, 06:00 UTC after.
    assert not office.contains(datetime(2026, 3, 28, 6, 30, tzinfo=UTC))
    assert office.contains(datetime(2026, 3, 28, 7, 0, tzinfo=UTC))
    assert office.contains(datetime(2026, 3, 29, 6, 0, tzinfo=UTC))
    assert not office.contains(datetime(2026, 3, 29, 5, 59, tzinfo=UTC))
    assert office.contains(datetime(2026, 3, 29, 15, 59, tzinfo=UTC))
    assert not office.contains(datetime(2026, 3, 29, 16, 0, tzinfo=UTC))  # 18:00 CEST
    # 2026-10-25 03:00 CEST -> 02:00 CET: 08:00 is 07:00 UTC again.
    assert not office.contains(datetime(2026, 10, 25, 6, 30, tzinfo=UTC))
    assert office.contains(datetime(2026, 10, 24, 6, 30, tzinfo=UTC))


def test_overnight_hours_across_daylight_saving_nights() -> None:
    night = brussels("Sat 22:00-06:00")
    # The spring night is an hour shorter: 21:00 UTC (CET) to 04:00 UTC (CEST).
    assert not night.contains(datetime(2026, 3, 28, 20, 59, tzinfo=UTC))
    assert night.contains(datetime(2026, 3, 28, 21, 0, tzinfo=UTC))
    assert night.contains(datetime(2026, 3, 29, 3, 59, tzinfo=UTC))
    assert not night.contains(datetime(2026, 3, 29, 4, 0, tzinfo=UTC))
    # The autumn night is an hour longer: 20:00 UTC (CEST) to 05:00 UTC (CET).
    assert night.contains(datetime(2026, 10, 24, 20, 0, tzinfo=UTC))
    assert night.contains(datetime(2026, 10, 25, 4, 59, tzinfo=UTC))
    assert not night.contains(datetime(2026, 10, 25, 5, 0, tzinfo=UTC))


def test_the_skipped_and_the_repeated_hour() -> None:
    hour = brussels("Sun 02:00-03:00")
    # In spring 02:00-03:00 does not exist; in autumn it happens twice.
    spring = [datetime(2026, 3, 29, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 240)]
    assert not any(hour.contains(t) for t in spring)
    autumn = datetime(2026, 10, 25, tzinfo=UTC)
    assert hour.contains(autumn.replace(hour=0, minute=30))  # 02:30 CEST
    assert hour.contains(autumn.replace(hour=1, minute=30))  # 02:30 CET
    assert not hour.contains(autumn.replace(hour=2))  # 03:00 CET


@PROPERTY
@given(
    at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    start=st.integers(0, 23),
    end=st.integers(0, 23),
)
def test_a_range_and_its_complement_split_every_instant(at: datetime, start: int, end: int) -> None:
    assume(start != end)
    inside = brussels(f"{start:02d}:00-{end:02d}:00")
    outside = brussels(f"{end:02d}:00-{start:02d}:00")
    assert inside.contains(at) != outside.contains(at)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Mon-Fry 08:00-18:00", "unknown day 'Fry'"),
        ("Mon-Fri 8-18", "'8' is not a time of day"),
        ("Mon-Fri 08:00", "'08:00' is not a time range"),
        ("Mon 25:00-26:00", "'25:00' is not a time of day"),
        ("Mon 08:00-08:00", "is an empty range"),
        ("Mon 24:00-06:00", "cannot start at 24:00"),
        ("Mon 08:00-12:00 extra", "invalid hours"),
        (" ; ", "no hours given"),
    ],
)
def test_malformed_hours_say_why(spec: str, message: str) -> None:
    with pytest.raises(HoursError, match=re.escape(message)):
        Hours.parse(spec)


def test_unknown_timezone() -> None:
    with pytest.raises(HoursError, match="unknown timezone 'Europe/Brusels'"):
        Hours.parse("Mon", "Europe/Brusels")


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30), ("10m", 600), ("1h30m", 5400), ("1d", 86400), (45, 45)]
)
def test_durations(value: str | int, seconds: float) -> None:
    assert duration(value) == seconds


@pytest.mark.parametrize("value", ["10x", "", "0", -5, "31d", "m"])
def test_bad_durations(value: str | int) -> None:
    with pytest.raises(HoursError, match="invalid duration"):
        duration(value)
