"""Opening hours ("Mon-Fri 08:00-18:00") in a time zone, and durations ("10m"): pure parsing.

A window is wall-clock time in its zone: an instant is turned into local time and compared
with the window, so "08:00" stays 08:00 across daylight-saving changes; a window that ends
before it starts ("22:00-06:00") runs past midnight and belongs to the day it starts on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EVERY_DAY = frozenset(range(7))
_DAY_MINUTES = 24 * 60
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EXAMPLE = "write e.g. 'Mon-Fri 08:00-18:00' or 'Sat,Sun 10:00-14:00; Mon 22:00-06:00'"


class HoursError(ValueError):
    """An hours spec, time zone or duration that cannot be read."""


@dataclass(frozen=True, slots=True)
class Window:
    """``days`` (0 = Monday) from ``start`` to ``end``, in minutes since midnight.

    ``end <= start`` means the window runs past midnight into the next day.
    """

    days: frozenset[int]
    start: int
    end: int

    def contains(self, weekday: int, minute: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Overnight: the evening of a listed day, or the early morning after one.
        return (weekday in self.days and minute >= self.start) or (
            (weekday - 1) % 7 in self.days and minute < self.end
        )


@dataclass(frozen=True, slots=True)
class Hours:
    """One or more windows, read in ``zone``; ``source`` is what the config said."""

    windows: tuple[Window, ...]
    zone: ZoneInfo
    source: str

    @classmethod
    def parse(cls, spec: str | Sequence[str], timezone: str = "UTC") -> Hours:
        """Windows from ``"Mon-Fri 08:00-18:00; Sat 10:00-12:00"`` or a list of such specs."""
        specs = [spec] if isinstance(spec, str) else list(spec)
        parts = [p.strip() for s in specs for p in s.split(";")]
        if not any(parts):
            raise HoursError(f"no hours given ({EXAMPLE})")
        windows = tuple(w for part in parts if part for w in _windows(part))
        return cls(windows, zone(timezone), "; ".join(p for p in parts if p))

    def contains(self, at: datetime) -> bool:
        """True if the instant ``at`` falls in a window (a naive ``at`` is read as UTC)."""
        return self.contains_local(*wall_clock(at, self.zone))

    def contains_local(self, weekday: int, minute: int) -> bool:
        """``contains`` for a wall-clock time in ``zone``, computed once for several rules."""
        # A loop, not any(): a generator costs more than the check, for every SMS at intake.
        for window in self.windows:  # noqa: SIM110
            if window.contains(weekday, minute):
                return True
        return False


def wall_clock(at: datetime, zone: ZoneInfo) -> tuple[int, int]:
    """(weekday, minute of the day) of the instant ``at`` in ``zone``; naive ``at`` is UTC."""
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)
    return local.weekday(), local.hour * 60 + local.minute


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Brussels``), or ``HoursError``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursError(f"unknown timezone {name!r} (write e.g. Europe/Brussels)") from None


def _windows(spec: str) -> list[Window]:
    # "Mon - Fri  08:00 - 18:00" reads like "Mon-Fri 08:00-18:00".
    tokens = re.sub(r"\s*([-,])\s*", r"\1", spec).split()
    if len(tokens) == 1:
        days, ranges = (None, tokens[0]) if tokens[0][:1].isdigit() else (tokens[0], None)
    elif len(tokens) == 2:
        days, ranges = tokens
    else:
        raise HoursError(f"invalid hours {spec!r} ({EXAMPLE})")
    day_set = _days(days, spec) if days else _EVERY_DAY
    if ranges is None:
        return [Window(day_set, 0, _DAY_MINUTES)]
    return [_range(day_set, item, spec) for item in ranges.split(",")]


def _days(text: str, spec: str) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("-")
        start = _day(first, spec)
        stop = _day(last, spec) if last else start
        # "Fri-Mon" wraps over the weekend.
        found.update((start + step) % 7 for step in range((stop - start) % 7 + 1))
    return frozenset(found)


def _day(name: str, spec: str) -> int:
    key = name.lower()
    for table in (DAYS, _FULL):
        if key in table:
            return table.index(key)
    raise HoursError(f"invalid hours {spec!r}: unknown day {name!r} ({EXAMPLE})")


def _range(days: frozenset[int], text: str, spec: str) -> Window:
    first, sep, last = text.partition("-")
    if not sep:
        raise HoursError(f"invalid hours {spec!r}: {text!r} is not a time range ({EXAMPLE})")
    start, end = _clock(first, spec), _clock(last, spec)
    if start == _DAY_MINUTES:
        raise HoursError(f"invalid hours {spec!r}: a range cannot start at 24:00")
    if start == end:
        raise HoursError(f"invalid hours {spec!r}: {text!r} is an empty range")
    return Window(days, start, end)


def _clock(text: str, spec: str) -> int:
    found = _CLOCK.match(text)
    hours, minutes = (int(found.group(1)), int(found.group(2))) if found else (-1, -1)
    if not (0 <= hours <= 23 and 0 <= minutes <= 59) and (hours, minutes) != (24, 0):
        raise HoursError(f"invalid hours {spec!r}: {text!r} is not a time of day (HH:MM)")
    return hours * 60 + minutes


def duration(value: str | float) -> float:
    """Seconds in ``value``: a number of seconds, or ``"30s"``, ``"10m"``, ``"1h30m"``, ``"1d"``."""
    if isinstance(value, bool):
        raise HoursError("invalid duration: write e.g. 30s, 10m, 1h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        pieces = _DURATION.findall(text)
        if not text or "".join(n + u for n, u in pieces) != text:
            try:
                seconds = float(text)
            except ValueError:
                raise HoursError(
                    f"invalid duration {value!r}: write e.g. 30s, 10m, 1h or a number of seconds"
                ) from None
        else:
            seconds = sum(float(n) * _UNIT[u] for n, u in pieces)
    if not 0 < seconds <= timedelta(days=30).total_seconds():
        raise HoursError(f"invalid duration {value!r}: must be more than 0 and at most 30 days")
    return seconds
