"""What to ask a gateway's listing for, and which of the rows it lists are new.

The rules, for every gateway that can list what it received (``PollsInbound``):

- The window is by the bridge's own clock. A poll asks from ``poll_overlap`` before the
  previous poll started, so a row that shows up late (a second phone syncing after hours
  offline, a slow upload) or dated in the past is still in it. Nothing the vendor dates moves
  the window: a phone clock an hour ahead cannot push it past later SMS.
- A row is new when its provider id is not in the store, whatever its date says. Dates only
  bound the very first poll: ``first_poll_lookback`` before it (the *floor*), widened by the
  connector's ``date_margin`` where its dates carry no zone. The floor is kept, so later
  polls never bridge the history the first one left out.
- The cursor is written with the SMS it found, in one transaction: a poll is never
  half-remembered, and a restart resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger(__name__)

# Wider than any zone offset (UTC-12 to UTC+14): the margin for dates without a zone.
ZONE_MARGIN = 14 * 3600.0


@dataclass(frozen=True)
class Window:
    """One poll's bounds: ask from ``since``; rows dated before ``floor`` predate the bridge."""

    floor: float  # unix seconds: rows dated earlier were history when the bridge started
    checked: float | None  # when the last successful poll started (the bridge's clock)

    def since(self, overlap: float, margin: float) -> datetime:
        start = self.floor if self.checked is None else max(self.floor, self.checked - overlap)
        return datetime.fromtimestamp(start - margin, UTC)

    def dump(self, started: float) -> str:
        return json.dumps({"v": 2, "floor": self.floor, "checked": started})


def read_window(cursor: str | None, now: float, lookback: float) -> Window:
    """The stored window, or a first one bounded by ``lookback``.

    Cursors of earlier versions held the newest date the connector had seen (a number, an ISO
    time, Smstools' JSON with ``newest``, SmsGateway24's ``<id>:<UTC day>``): that moment serves
    as floor and last check, so an upgrade neither skips nor re-bridges more than the overlap
    already covers.
    """
    if not cursor:
        # Whole seconds: most vendors date by the second, and an SMS in the very second of the
        # first poll must not fall under a floor it shares that second with.
        return Window(floor=math.floor(now - lookback), checked=None)
    try:
        data = json.loads(cursor)
        if isinstance(data, dict) and data.get("v") == 2:
            # A check "in the future" (our clock was set back since) would narrow every window
            # and never be rewritten by a quiet poll: it counts as now.
            # (The floor is never after the check less the lookback; the same clamp for it.)
            checked = min(float(data["checked"]), now)
            return Window(floor=min(float(data["floor"]), checked - lookback), checked=checked)
    except (ValueError, TypeError, KeyError):
        pass
    stamp = _old_cursor(cursor)
    if stamp is None:
        log.warning("unreadable poll cursor %r; starting from the lookback window", cursor[:80])
        return read_window(None, now, lookback)
    stamp = min(stamp, now)  # an old cursor pushed ahead by a clock running fast
    return Window(floor=stamp - lookback, checked=stamp)


def _old_cursor(cursor: str) -> float | None:
    """The moment an earlier version's cursor stood at, or None."""
    try:
        data = json.loads(cursor)
        value = data["newest"] if isinstance(data, dict) else data
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        stamp = float(value)
    except (ValueError, TypeError, KeyError):
        _, colon, day = cursor.partition(":")
        try:
            if colon and len(day) == 10:  # SmsGateway24: the day's start is before its poll
                moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
            else:  # Twilio: an ISO time with its offset
                moment = datetime.fromisoformat(cursor)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        stamp = moment.timestamp()
    return stamp if math.isfinite(stamp) else None
