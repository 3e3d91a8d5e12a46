"""Workers that drain the store: the common loop, and the one that sends SMS through a gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import timedelta
from typing import Protocol

from bridge.errors import Ambiguous, DeliveryError, OptedOut, RateLimited, Retryable, Terminal
from bridge.lifecycle import STOP_GRACE, settle
from bridge.metrics import Metrics
from bridge.models import Outbox, SendResult
from bridge.optout import GATEWAY_OPTED_OUT, refusal
from bridge.outgoing_media import MediaLinks
from bridge.ports import Reconciles, SendsMedia, SmsGateway
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

IDLE_POLL = 2.0  # seconds; wake-ups make this a fallback for writers in other processes
MAX_BACKOFF = 300.0


def backoff(attempts: int) -> float:
    """Exponential with jitter, so a recovering remote is not hit by every retry at once."""
    base: float = min(MAX_BACKOFF, 2.0 ** min(attempts, 12))
    return base * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security


class Drainer(Protocol):
    """What the app needs of anything that drains a queue (one worker, or a chat's lanes)."""

    name: str

    def start(self) -> None: ...

    def halt(self) -> None: ...

    async def stop(self, grace: float = STOP_GRACE) -> None: ...

    def wake(self) -> None: ...

    @property
    def alive(self) -> bool: ...

    @property
    def down(self) -> str | None: ...

    @property
    def last_error(self) -> str | None: ...


class Worker:
    """One task draining one queue in order; ``wake()`` cuts its sleep short."""

    name = "worker"

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_error: str | None = None
        self.down: str | None = None  # why its destination refuses us, until a call succeeds

    def wake(self) -> None:
        self._event.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    def halt(self) -> None:
        """Start nothing new: what is queued stays in the store for the next start."""
        self._stopping = True
        self._event.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        self.halt()
        if self._task is not None:
            # The current step finishes (its result is committed) before the loop exits; a
            # call still hanging after ``grace`` is cut short and reconciled next time.
            await settle([self._task], grace, self.name)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=max(0.0, seconds))

    async def _loop(self) -> None:
        while not self._stopping:
            # Cleared before looking for work, not before sleeping: a wake() that arrives
            # while step() runs must cut the following sleep short instead of being lost.
            self._event.clear()
            try:
                pause = await self.step()
            except Exception:
                # A bug or a store outage must not kill the worker: what it was doing is still
                # in the store and will be picked up again.
                log.exception("%s: unexpected error", self.name)
                self.last_error = "unexpected error (see log)"
                pause = 5.0
            if pause is not None:
                await self.sleep(pause)

    async def step(self) -> float | None:
        """Do one unit of work; return seconds to sleep, or None to go on at once."""
        raise NotImplementedError


class SmsWorker(Worker):
    """Sends a gateway's outbox in order, with retries, reconciliation and expiry."""

    def __init__(
        self,
        gateway: SmsGateway,
        store: SqlStore,
        metrics: Metrics,
        expiry: float,
        public_url: str | None = None,
    ) -> None:
        super().__init__()
        self.gateway = gateway
        self.store = store
        self.metrics = metrics
        self.expiry = expiry
        # Only a gateway that sends media can have SMS with files: no lookup for the others.
        self._media = MediaLinks(store, public_url) if isinstance(gateway, SendsMedia) else None
        self.name = f"sms:{gateway.name}"
        self._latency = metrics.send_latency.labels(gateway.name)  # per SMS: looked up once

    async def step(self) -> float | None:
        pending = await self.store.outbound.next_pending(self.gateway.name)
        if pending is None:
            return IDLE_POLL
        wait = pending.next_attempt_at - time.time()
        if wait > 0:
            return wait
        sms = pending.sms
        created = pending.created_at
        if pending.maybe_sent and isinstance(self.gateway, Reconciles):
            since = sms.attempt_started_at
            assert since is not None
            try:
                claimed = await self.store.outbound.claimed_provider_ids(sms)
                found = await self.gateway.find_sent(
                    sms.to_outbound(), since - timedelta(seconds=30), claimed
                )
            except DeliveryError as exc:
                self.metrics.error("gateway", self.gateway.name, exc)
                await self._retry(
                    sms.id, created, sms.attempts, backoff(sms.attempts), exc.reason, True
                )
                return None
            if found is not None:
                log.info(
                    "%s: SMS %s had gone out before the restart (%s)",
                    self.name,
                    sms.id,
                    found,
                    extra={"gateway": self.gateway.name, "number": sms.to, "outbox_id": sms.id},
                )
                await self.store.outbound.record_sent(sms.id, self.gateway.name, SendResult(found))
                self.metrics.sms_sent.labels(self.gateway.name, "reconciled").inc()
                return None
        why = refusal(opted_out=pending.opted_out, blocked=pending.blocked)
        if why is not None and pending.purpose != "confirmation":
            await self._refuse(sms, why)
            return None
        await self.store.outbound.begin_attempt(sms.id)
        try:
            outbound = sms.to_outbound() if self._media is None else await self._media.outbound(sms)
            result = await self.gateway.send(outbound)
        except Terminal as exc:
            self.metrics.error("gateway", self.gateway.name, exc)
            reason = exc.reason
            if isinstance(exc, OptedOut):
                # The STOP went to the gateway, not to us: remember it as if it had.
                await self.store.contacts.set_opted_out(sms.to, True)
                self.metrics.opt_outs.labels(self.gateway.name, "gateway").inc()
                reason = GATEWAY_OPTED_OUT.format(reason=exc.reason.rstrip("."))
            await self.store.outbound.fail(sms.id, reason, exc.raw_status)
            self.metrics.sms_sent.labels(self.gateway.name, "failed").inc()
            log.warning(
                "%s: SMS %s failed: %s",
                self.name,
                sms.id,
                exc.reason,
                extra={"gateway": self.gateway.name, "number": sms.to, "outbox_id": sms.id},
            )
            return None
        except RateLimited as exc:
            self.metrics.error("gateway", self.gateway.name, exc)
            await self._retry(sms.id, created, sms.attempts + 1, exc.retry_after, exc.reason, False)
            return None
        except Ambiguous as exc:
            self.metrics.error("gateway", self.gateway.name, exc)
            await self._retry(
                sms.id, created, sms.attempts + 1, backoff(sms.attempts), exc.reason, True
            )
            return None
        except Retryable as exc:
            self.metrics.error("gateway", self.gateway.name, exc)
            await self._retry(
                sms.id, created, sms.attempts + 1, backoff(sms.attempts), exc.reason, False
            )
            return None
        except Exception as exc:
            log.exception(
                "%s: unexpected error sending SMS %s",
                self.name,
                sms.id,
                extra={"gateway": self.gateway.name, "number": sms.to, "outbox_id": sms.id},
            )
            self.metrics.error("gateway", self.gateway.name, exc)
            await self._retry(
                sms.id, created, sms.attempts + 1, backoff(sms.attempts), "internal error", True
            )
            return None
        self.last_error = None
        await self.store.outbound.record_sent(sms.id, self.gateway.name, result)
        self.metrics.sms_sent.labels(self.gateway.name, "accepted").inc()
        # Not for reconciled SMS above: when the gateway accepted those is not known.
        self._latency.observe(max(0.0, time.time() - created))
        return None

    async def _refuse(self, sms: Outbox, why: str) -> None:
        """Fail an SMS to an opted-out or blocked number unsent; its thread is told why."""
        await self.store.outbound.fail(sms.id, why, None)
        self.metrics.sms_sent.labels(self.gateway.name, "refused").inc()
        log.info(
            "%s: SMS %s not sent: the number opted out or is blocked",
            self.name,
            sms.id,
            extra={"gateway": self.gateway.name, "number": sms.to, "outbox_id": sms.id},
        )

    async def _retry(
        self,
        outbox_id: int,
        created: float,
        attempts: int,
        delay: float,
        reason: str,
        maybe_sent: bool,
    ) -> None:
        self.last_error = reason
        if time.time() + delay - created > self.expiry:
            hours = self.expiry / 3600
            await self.store.outbound.fail(
                outbox_id, f"gave up after {attempts} attempts in {hours:g} h: {reason}", None
            )
            self.metrics.sms_sent.labels(self.gateway.name, "expired").inc()
            return
        log.info(
            "%s: SMS %s will be retried in %.0f s: %s",
            self.name,
            outbox_id,
            delay,
            reason,
            extra={"gateway": self.gateway.name, "outbox_id": outbox_id},
        )
        self.metrics.sms_sent.labels(self.gateway.name, "retry").inc()
        await self.store.outbound.retry_later(outbox_id, delay, reason, maybe_sent=maybe_sent)
