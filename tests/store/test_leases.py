"""Leases on SQLite and real PostgreSQL, and the keeper that turns them into running duties."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bridge.duties import Duty, LeaseKeeper
from bridge.metrics import Metrics
from bridge.store.sql import SqlStore

DUTIES = ["chat:support", "gateway:office", "send:office"]


def _async(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    opened = await SqlStore.open(_async(store_url))
    yield opened
    await opened.close()


async def test_a_lease_has_one_holder_until_it_runs_out(store: SqlStore) -> None:
    assert await store.leases.claim("a", DUTIES, 1.0) == set(DUTIES)
    assert await store.leases.claim("b", DUTIES, 1.0) == set()
    assert await store.leases.claim("a", DUTIES[:1], 1.0) == {DUTIES[0]}  # renewed
    holders = {h.name: h for h in await store.leases.holders()}
    assert {h.holder for h in holders.values()} == {"a"}
    assert all(0 < h.left <= 1.0 for h in holders.values())
    await asyncio.sleep(1.1)
    assert await store.leases.claim("b", DUTIES, 1.0) == set(DUTIES)  # ran out: taken over
    assert await store.leases.claim("a", DUTIES, 1.0) == set()


async def test_a_released_lease_is_free_at_once(store: SqlStore) -> None:
    assert await store.leases.claim("a", DUTIES, 60.0) == set(DUTIES)
    await store.leases.release("a", DUTIES[:2])
    await store.leases.release("b", DUTIES[2:])  # not b's to release
    assert await store.leases.claim("b", DUTIES, 60.0) == set(DUTIES[:2])


async def test_claims_at_the_same_moment_give_each_lease_to_one_instance(pg_url: str) -> None:
    stores = [await SqlStore.open(_async(pg_url)) for _ in range(4)]
    try:
        names = [f"duty:{i}" for i in range(20)]
        for _ in range(5):
            won = await asyncio.gather(
                *(s.leases.claim(f"i{n}", names, 0.3) for n, s in enumerate(stores))
            )
            assert sorted(name for w in won for name in w) == sorted(names)
            await asyncio.sleep(0.35)
    finally:
        for s in stores:
            await s.close()


class Recorder:
    """Duties that note when they run, to see two keepers share them."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.events: list[tuple[str, str]] = []

    def duty(self, name: str, who: str) -> Duty:
        async def start() -> None:
            self.running[name] = self.running.get(name, 0) + 1
            self.events.append((who, f"start {name}"))

        async def stop(_grace: float) -> None:
            self.running[name] -= 1
            self.events.append((who, f"stop {name}"))

        return Duty(name, start, stop)


async def keeper(store: SqlStore, recorder: Recorder, who: str, ttl: float) -> LeaseKeeper:
    kept = LeaseKeeper(store.leases, ttl, Metrics(), who)
    for name in DUTIES:
        kept.add(recorder.duty(name, who))
    await kept.start()
    return kept


async def test_keepers_share_duties_and_a_clean_stop_hands_them_over_at_once(
    pg_url: str,
) -> None:
    recorder = Recorder()
    one, two = [await SqlStore.open(_async(pg_url)) for _ in range(2)]
    try:
        first = await keeper(one, recorder, "first", ttl=2.0)
        second = await keeper(two, recorder, "second", ttl=2.0)
        assert first.held == set(DUTIES) and second.held == set()
        assert second.state() == {name: {"state": "standby"} for name in DUTIES}
        started = time.monotonic()
        await first.stop(1.0)
        while second.held != set(DUTIES):
            assert time.monotonic() - started < 5, second.state()
            await asyncio.sleep(0.05)
        assert time.monotonic() - started < 2.0 / 4 + 0.5  # one renew tick, no expiry wait
        assert all(n == 1 for n in recorder.running.values())
        await second.stop(1.0)
    finally:
        await one.close()
        await two.close()


async def test_a_dead_keepers_duties_move_within_the_ttl_never_overlapping(pg_url: str) -> None:
    recorder = Recorder()
    one, two = [await SqlStore.open(_async(pg_url)) for _ in range(2)]
    try:
        first = await keeper(one, recorder, "first", ttl=2.0)
        second = await keeper(two, recorder, "second", ttl=2.0)
        await first.halt()  # dies: no renewal, no release, its duties "run" on
        died = time.monotonic()
        while second.held != set(DUTIES):
            assert time.monotonic() - died < 2.0 + 2.0 / 4 + 0.5
            await asyncio.sleep(0.05)
        assert time.monotonic() - died >= 2.0 - 2.0 / 4 - 0.1  # not before it could run out
        await second.stop(1.0)
    finally:
        await one.close()
        await two.close()


async def test_an_owner_that_cannot_renew_stops_before_another_may_start(pg_url: str) -> None:
    recorder = Recorder()
    one, two = [await SqlStore.open(_async(pg_url)) for _ in range(2)]
    try:
        first = await keeper(one, recorder, "first", ttl=2.0)
        second = await keeper(two, recorder, "second", ttl=2.0)
        await one.db.dispose()  # its database is gone: every renewal fails

        async def unreachable(*_args: object) -> set[str]:
            raise ConnectionError("database unreachable")

        first.leases.claim = unreachable  # type: ignore[method-assign]
        while second.held != set(DUTIES):
            # Never both: the first has stopped its duties by the time the second starts them.
            assert all(n <= 1 for n in recorder.running.values()), recorder.events
            await asyncio.sleep(0.02)
        assert first.held == set()
        order = [e for e in recorder.events if e[1].endswith(DUTIES[0])]
        assert order == [
            ("first", f"start {DUTIES[0]}"),
            ("first", f"stop {DUTIES[0]}"),
            ("second", f"start {DUTIES[0]}"),
        ]
        await first.halt()
        await second.stop(1.0)
    finally:
        await two.close()


async def test_a_slow_start_never_keeps_other_duties_past_their_lease(pg_url: str) -> None:
    """A duty slow to start (a webhook registration at a sluggish phone) holds up the round
    that starts it: the duties already held must not run on once their leases ran out."""
    recorder = Recorder()
    ttl = 1.0
    one, two, three = [await SqlStore.open(_async(pg_url)) for _ in range(3)]
    try:
        holder = LeaseKeeper(two.leases, ttl, Metrics(), "holder")
        holder.add(recorder.duty("slow", "holder"))
        await holder.start()
        assert holder.held == {"slow"}

        first = LeaseKeeper(one.leases, ttl, Metrics(), "first")
        first.add(recorder.duty("fast", "first"))
        plain = recorder.duty("slow", "first")

        async def slow_start() -> None:
            await plain.start()
            await asyncio.sleep(3 * ttl)

        first.add(Duty("slow", slow_start, plain.stop))
        await first.start()
        assert first.held == {"fast"}
        third = LeaseKeeper(three.leases, ttl, Metrics(), "third")
        third.add(recorder.duty("fast", "third"))
        await third.start()
        await holder.stop(0.1)  # "slow" is free: first's next round starts it, slowly
        ended = time.monotonic() + 4 * ttl
        while time.monotonic() < ended:
            assert recorder.running.get("fast", 0) <= 1, recorder.events
            await asyncio.sleep(0.02)
        await first.stop(0.1)
        await third.stop(0.1)
    finally:
        for store in (one, two, three):
            await store.close()


async def test_a_graceful_stop_ends_its_duties_before_their_leases_run_out(pg_url: str) -> None:
    """A stop renews nothing more, so the grace its duties get (a post still in flight) must
    not outlast their leases: another instance would start them beside the last calls."""
    recorder = Recorder()
    ttl = 1.0
    one, two = [await SqlStore.open(_async(pg_url)) for _ in range(2)]
    try:
        first = LeaseKeeper(one.leases, ttl, Metrics(), "first")
        plain = recorder.duty("chat:support", "first")

        async def hanging_stop(grace: float) -> None:
            await asyncio.sleep(grace)  # a call in flight that takes all the grace it gets
            await plain.stop(grace)

        first.add(Duty(plain.name, plain.start, hanging_stop))
        await first.start()
        second = LeaseKeeper(two.leases, ttl, Metrics(), "second")
        second.add(recorder.duty("chat:support", "second"))
        await second.start()
        stopping = asyncio.create_task(first.stop(3 * ttl))
        while not stopping.done():
            assert recorder.running.get("chat:support", 0) <= 1, recorder.events
            await asyncio.sleep(0.02)
        await stopping
        await second.stop(0.1)
    finally:
        await one.close()
        await two.close()


async def test_a_stop_cut_into_by_halt_still_ends_the_duty(pg_url: str) -> None:
    """The bridge halts the keeper while it may be stopping a duty whose lease was not renewed:
    that stop must still finish, or the duty's work runs on after the store is closed."""
    recorder = Recorder()
    one = await SqlStore.open(_async(pg_url))
    try:
        first = LeaseKeeper(one.leases, 1.0, Metrics(), "first")
        plain = recorder.duty("chat:support", "first")
        stopping = asyncio.Event()

        async def slow_stop(grace: float) -> None:
            stopping.set()
            await asyncio.sleep(0.3)  # cancelling a call in flight takes a moment
            await plain.stop(grace)

        first.add(Duty(plain.name, plain.start, slow_stop))
        await first.start()

        async def unreachable(*_args: object) -> set[str]:
            raise ConnectionError("database unreachable")

        first.leases.claim = unreachable  # type: ignore[method-assign]
        await asyncio.wait_for(stopping.wait(), 3.0)
        await first.halt()  # the bridge stops just then
        assert recorder.running == {"chat:support": 0}, recorder.events
        await first.stop(0.1)
    finally:
        await one.close()
