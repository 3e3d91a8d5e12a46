"""Singleton duties of a deployment, each owned by one instance at a time through a lease.

A gateway's pollers, its outbox, a chat's posting (one pace for all instances) and its update
stream must each run in exactly one process. Every instance keeps asking for every duty; the
store's lease table gives each to one of them. The owner renews its leases every quarter of
``lease_ttl``; when it dies, its leases run out and the next claim of another instance takes
them. An owner that cannot renew (the database is gone, the process was paused) stops its
duties by its own clock before the lease can run out by the database's, so two instances
never work on the same duty at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.metrics import Metrics
from bridge.store.leases import Leases

log = logging.getLogger(__name__)

# Renewals per lease_ttl: a lease survives three missed renewals (a slow database moment).
RENEWALS = 4
# Taken off the owner's own deadline: an owner stops a little before its lease runs out,
# so that a call it starts just then has ended before another instance can take over.
MARGIN = 0.25


def instance_id() -> str:
    """Who this process is, in lease rows and /healthz: readable, and new on every start."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class Duty:
    """What to start when this instance gets the duty, and to stop when it loses it.

    ``stop(grace)`` must have ended all of the duty's work when it returns: a call still
    running after ``grace`` seconds is cut short (a lost lease gives none).
    """

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[float], Awaitable[None]]


class LeaseKeeper:
    """Claims this instance's share of the duties, renews it, and starts or stops each duty."""

    def __init__(self, leases: Leases, ttl: float, metrics: Metrics, instance: str) -> None:
        self.leases = leases
        self.ttl = ttl
        self.metrics = metrics
        self.instance = instance
        self.duties: dict[str, Duty] = {}
        self.held: set[str] = set()
        self._deadline = 0.0  # monotonic: when our leases may have run out, unless renewed
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one round at a time: a round starts and stops duties
        self._failing = False

    @property
    def tick(self) -> float:
        return self.ttl / RENEWALS

    def add(self, duty: Duty) -> None:
        self.duties[duty.name] = duty
        self.metrics.duty_active.labels(duty.name).set(0)

    async def start(self) -> None:
        """Claim once now (a lone instance owns everything when it says it has started)."""
        await self._round()
        self._task = asyncio.create_task(self._run(), name="leases")

    async def halt(self) -> None:
        """Claim nothing more; the duties keep running until ``stop``."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self, grace: float) -> None:
        """Stop every duty held (the work under way gets ``grace``), then release the leases,
        so another instance takes over at once instead of waiting for them to run out."""
        await self.halt()
        async with self._lock:
            held = sorted(self.held)
            # Nothing renews the leases from here on: the duties' grace must end before they
            # run out, or another instance starts a duty beside its last calls. Renewed once
            # more first, so that a stop just before a renewal still gets its grace.
            lost = set(held)
            started = time.monotonic()
            try:
                renewed = await asyncio.wait_for(
                    self.leases.claim(self.instance, held, self.ttl), self.tick
                )
                lost -= renewed
                if renewed:
                    self._deadline = started + self.ttl - MARGIN
            except Exception:  # the last renewal's deadline stands
                lost = set()
            await self._drop(sorted(lost), 0.0, "taken over by another instance")
            left = max(0.0, min(grace, self._deadline - time.monotonic()))
            await self._drop(sorted(self.held), left, "stopping")
        try:
            await asyncio.wait_for(self.leases.release(self.instance, held), self.tick)
        except Exception as exc:  # the leases run out by themselves
            log.warning("could not release duties (%s); others take them in %gs", exc, self.ttl)

    def state(self) -> dict[str, dict[str, str]]:
        """Each duty: "active" here or "standby" (another instance has it, or will)."""
        return {
            name: {"state": "active" if name in self.held else "standby"}
            for name in sorted(self.duties)
        }

    async def _run(self) -> None:
        while True:
            wait = self.tick
            if self.held:
                wait = min(wait, max(0.0, self._deadline - time.monotonic()))
            await asyncio.sleep(wait)
            if self.held and time.monotonic() >= self._deadline:
                # Not renewed in time (the database is slow or gone): stop before anyone
                # else may start.
                async with self._lock:
                    await self._drop(sorted(self.held), 0.0, "lease not renewed in time")
            try:
                await self._round()
            except Exception:  # a bug here must not end the renewals of every duty
                log.exception("lease round failed")

    async def _round(self) -> None:
        async with self._lock:
            started = time.monotonic()
            try:
                # Bounded: a claim answered after our leases ran out must not count.
                won = await asyncio.wait_for(
                    self.leases.claim(self.instance, self.duties, self.ttl), self.tick
                )
            except Exception as exc:
                if not self._failing:
                    log.warning("cannot renew duties: %s: %s", type(exc).__name__, exc)
                self._failing = True
                return
            if self._failing:
                log.info("duties renewed again")
                self._failing = False
            self._deadline = started + self.ttl - MARGIN
            await self._drop(sorted(self.held - won), 0.0, "taken over by another instance")
            for name in sorted(won - self.held):
                await self._take(name)

    async def _take(self, name: str) -> None:
        try:
            # Bounded by our deadline: the round holds the lock, so while a start is under way
            # nothing renews the duties already held, nor stops them when their leases run out.
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no time left on this round's leases")
            await asyncio.wait_for(self.duties[name].start(), left)
        except Exception:
            # Its work stays in the store; another round (here or elsewhere) tries again.
            log.exception("duty %s failed to start", name)
            try:
                await self.duties[name].stop(0.0)
                await self.leases.release(self.instance, [name])
            except Exception:  # the lease runs out by itself
                log.exception("duty %s: could not give it back", name)
            return
        self.held.add(name)
        self.metrics.duty_active.labels(name).set(1)
        log.info("duty %s: active on this instance (%s)", name, self.instance)

    async def _drop(self, names: list[str], grace: float, why: str) -> None:
        """Stop duties side by side: each one's calls in flight get the same ``grace``."""
        for name in names:
            self.held.discard(name)
            self.metrics.duty_active.labels(name).set(0)
            if why != "stopping":
                log.warning("duty %s: standby (%s)", name, why)
        stopping = asyncio.gather(
            *(self.duties[name].stop(grace) for name in names), return_exceptions=True
        )
        try:
            # Shielded: halt() may cancel the round under way, and a duty no longer held that
            # did not finish stopping would be stopped by nobody (its work outliving the store).
            stopped = await asyncio.shield(stopping)
        except asyncio.CancelledError:
            await stopping
            raise
        for name, problem in zip(names, stopped, strict=True):
            if isinstance(problem, BaseException):
                log.error("duty %s did not stop cleanly", name, exc_info=problem)
