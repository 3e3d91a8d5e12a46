"""Pacing: sliding windows per key, shared keys, and holds for retry_after."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.pacing import JITTER_MARGIN, Interrupted, Pacer, Rate


async def test_window_spaces_posts() -> None:
    pacer = Pacer()
    limits = [("chat", Rate(2, 0.3))]
    start = time.monotonic()
    waits = [await pacer.acquire(limits) for _ in range(5)]
    # 5 posts at 2 per 0.3 s: the 3rd waits 0.3 s, the 5th 0.6 s.
    assert time.monotonic() - start >= 0.55
    # It never asks for more than that: each of the two waits ends when a window's first post
    # leaves it (0.3 s plus the jitter margin). The waits it asked for, not wall time: a busy
    # machine may oversleep, and then the next wait is shorter, never longer.
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0.0
    assert sum(waits) <= 2 * (0.3 + JITTER_MARGIN) + 0.01


async def test_shared_key_is_shared_between_workers() -> None:
    pacer = Pacer()
    overall = ("bot", Rate(3, 0.5))
    times: list[float] = []

    async def worker(chat: str) -> None:
        for _ in range(3):
            await pacer.acquire([(chat, Rate(100, 1)), overall])
            times.append(time.monotonic())

    start = time.monotonic()
    await asyncio.gather(worker("a"), worker("b"))
    assert len(times) == 6
    # Never more than 3 in any half second, across both chats.
    times.sort()
    assert all(times[i + 3] - times[i] >= 0.49 for i in range(len(times) - 3))
    assert time.monotonic() - start >= 0.49


async def test_hold_delays_everything_under_the_key() -> None:
    pacer = Pacer()
    pacer.hold("chat", 0.3)
    assert pacer.delay([("chat", Rate(100, 1))]) > 0.25
    assert pacer.delay([("other", Rate(100, 1))]) == 0
    waited = await pacer.acquire([("chat", Rate(100, 1))])
    assert waited >= 0.25


async def test_a_stop_ends_a_wait_for_room_without_taking_any() -> None:
    pacer = Pacer()
    limits = [("group", Rate(1, 60))]
    await pacer.acquire(limits)  # the window is full for a minute
    stop = asyncio.Event()
    waiting = asyncio.create_task(pacer.acquire(limits, stop))
    await asyncio.sleep(0)  # it is waiting now
    assert not waiting.done()
    stop.set()
    with pytest.raises(Interrupted):
        await asyncio.wait_for(waiting, timeout=5)
    assert 59 < pacer.delay(limits) <= 60.7  # still one post in the window (plus 1%), not two


async def test_a_stop_does_not_hold_up_a_post_that_has_room() -> None:
    stop = asyncio.Event()
    stop.set()
    assert await Pacer().acquire([("chat", Rate(1, 1))], stop) == 0.0


async def test_a_window_listed_twice_takes_two_slots() -> None:
    """A call the platform makes as two requests (Slack's status: add one reaction, remove
    another) counts twice in its window, so the platform's own count stays under its limit."""
    clock = [100.0]
    pacer = Pacer(clock=lambda: clock[0])
    twice = [("reactions", Rate(3, 10)), ("reactions", Rate(3, 10))]
    assert pacer.delay(twice) == 0.0
    await pacer.acquire(twice)  # 2 of 3 taken
    assert pacer.delay([("reactions", Rate(3, 10))]) == 0.0  # one more fits
    assert pacer.delay(twice) == pytest.approx(10 + max(JITTER_MARGIN, 0.1))  # two do not
    clock[0] += 11
    assert pacer.delay(twice) == 0.0
    # More than a window holds waits for it to empty, then goes (never forever).
    assert pacer.delay([("one", Rate(1, 5))] * 3) == 0.0
