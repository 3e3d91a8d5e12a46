"""bridge/listing.py: the window a poll asks for, from no cursor, ours, and older versions'."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from bridge.listing import ZONE_MARGIN, Window, read_window

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 86400.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_without_a_cursor_the_first_poll_reaches_back_the_lookback() -> None:
    window = read_window(None, NOW, HOUR)
    assert window == Window(floor=NOW - HOUR, checked=None)
    assert window.since(DAY, 0) == at(NOW - HOUR)  # no overlap before a first check
    assert window.since(DAY, ZONE_MARGIN) == at(NOW - HOUR - ZONE_MARGIN)
    assert read_window("", NOW, 0).since(DAY, 0) == at(NOW)
    # An SMS dated (to the second) in the second of the first poll is not history.
    assert read_window(None, NOW + 0.7, 0).floor == NOW


def test_our_cursor_keeps_the_floor_and_overlaps_the_last_check() -> None:
    first = read_window(None, NOW, HOUR)
    cursor = first.dump(NOW + 3 * DAY)
    window = read_window(cursor, NOW + 4 * DAY, HOUR)
    assert window == Window(floor=NOW - HOUR, checked=NOW + 3 * DAY)  # no new lookback
    assert window.since(DAY, 0) == at(NOW + 2 * DAY)  # a day before the last check
    # Within the first day the floor bounds the window: no history from before the install.
    soon = read_window(first.dump(NOW + 60), NOW + 120, HOUR)
    assert soon.since(DAY, 0) == at(NOW - HOUR)
    assert soon.since(DAY, ZONE_MARGIN) == at(NOW - HOUR - ZONE_MARGIN)


def test_a_last_check_in_the_future_counts_as_now() -> None:
    # Our clock ran ahead once: a window from "tomorrow" would miss every SMS until then.
    cursor = json.dumps({"v": 2, "floor": NOW + DAY, "checked": NOW + 2 * DAY})
    window = read_window(cursor, NOW, HOUR)
    assert window == Window(floor=NOW - HOUR, checked=NOW)
    assert window.since(HOUR / 2, 0) == at(NOW - HOUR / 2)


@pytest.mark.parametrize(
    ("cursor", "moment"),
    [
        (repr(NOW - 600), NOW - 600),  # SMSMobileAPI, SMSGate: the newest date seen
        (json.dumps({"newest": NOW - 600, "seen": {"8812": NOW - 600}}), NOW - 600),  # Smstools
        ("2026-12-03T08:50:00+00:00", NOW - 600),  # Twilio: an ISO time
        ("62807345:2026-12-03", datetime(2026, 12, 3, tzinfo=UTC).timestamp()),  # SmsGateway24
    ],
)
def test_an_earlier_versions_cursor_is_where_the_window_resumes(cursor: str, moment: float) -> None:
    window = read_window(cursor, NOW, HOUR)
    assert window == Window(floor=moment - HOUR, checked=moment)
    # Rows dated up to the lookback before it are asked again; the store drops repeats.
    assert window.since(DAY, 0) == at(moment - HOUR)
    assert window.since(HOUR / 2, 0) == at(moment - HOUR / 2)


def test_an_earlier_cursor_in_the_future_is_taken_as_now() -> None:
    # The old cursors followed the phone's dates: one an hour ahead pushed them ahead.
    window = read_window(repr(NOW + HOUR), NOW, HOUR)
    assert window == Window(floor=NOW - HOUR, checked=NOW)
    assert window.since(DAY, 0) == at(NOW - HOUR)


@pytest.mark.parametrize(
    "cursor", ["not json", "true", "NaN", '{"newest": "x"}', "[1]", "2026-12-03T08:50:00"]
)
def test_an_unreadable_cursor_starts_from_the_lookback_and_says_so(
    cursor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.listing"):
        window = read_window(cursor, NOW, HOUR)
    assert window == Window(floor=NOW - HOUR, checked=None)
    assert "unreadable poll cursor" in caplog.text
