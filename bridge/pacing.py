"""Pacing of chat posts: sliding windows shared by key, plus holds for ``retry_after``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``messages`` in any ``seconds``-long window."""

    messages: int
    seconds: float


# Requests reach the platform with varying delay, so two sent exactly one period apart can
# arrive a little closer; a margin keeps the platform's own count under its limit. A flat
# 50 ms was not enough for Telegram's 20-a-minute group window: a busy moment delayed one
# post of a 600-post drain by more, and it drew a 429. So 1% of the window, at least 50 ms
# (0.6 s a minute: the drain keeps 99% of the allowed rate).
JITTER_MARGIN = 0.05
JITTER_SHARE = 0.01


class Interrupted(Exception):
    """A wait for room was cut short (the bridge is stopping); no room was taken."""


class _Window:
    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.period = rate.seconds + max(JITTER_MARGIN, rate.seconds * JITTER_SHARE)
        self.sent: deque[float] = deque()

    def delay(self, now: float, slots: int = 1) -> float:
        """Seconds until ``slots`` more fit (more than the window holds: when it is empty)."""
        while self.sent and self.sent[0] <= now - self.period:
            self.sent.popleft()
        over = len(self.sent) + min(slots, self.rate.messages) - self.rate.messages
        if over <= 0:
            return 0.0
        return self.sent[over - 1] + self.period - now


class Pacer:
    """Lets a post through only when every window it belongs to has room.

    Keys name what a limit is shared by (one chat, one bot account); several workers may share
    a key, and because checking and recording happen without an ``await`` in between, they can
    never both take the last slot.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, Rate], _Window] = {}
        self._held: dict[str, float] = {}

    def delay(self, limits: Sequence[tuple[str, Rate]]) -> float:
        """Seconds until a post under ``limits`` may go (0 when it may go now).

        A window listed n times needs n slots: one call the platform makes as several
        requests (Slack's status: a reaction added, another removed)."""
        now = self._clock()
        wait = 0.0
        for (key, rate), slots in Counter(limits).items():
            window = self._window(key, rate)
            wait = max(wait, self._held.get(key, 0.0) - now, window.delay(now, slots))
        return wait

    async def acquire(
        self, limits: Sequence[tuple[str, Rate]], until: asyncio.Event | None = None
    ) -> float:
        """Wait for room, then take it; returns how long it waited.

        Raises ``Interrupted`` if ``until`` is set while it has to wait: a stop must not sit
        out a pacing window (up to a minute for a Telegram group).
        """
        waited = 0.0
        while (wait := self.delay(limits)) > 0:
            if until is None:
                await asyncio.sleep(wait)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(until.wait(), timeout=wait)
                if until.is_set():
                    raise Interrupted
            waited += wait
        now = self._clock()
        for key, rate in limits:
            self._window(key, rate).sent.append(now)
        return waited

    def hold(self, key: str, seconds: float) -> None:
        """The platform said ``retry_after``: nothing under ``key`` goes before it has passed."""
        until = self._clock() + seconds
        self._held[key] = max(self._held.get(key, 0.0), until)

    def _window(self, key: str, rate: Rate) -> _Window:
        window = self._windows.get((key, rate))
        if window is None:
            window = self._windows[(key, rate)] = _Window(rate)
        return window
