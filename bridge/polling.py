"""Polling a gateway: its listing of received SMS (see bridge/listing.py), the safety net
under webhooks, and the status of SMS still on their way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from bridge import storable
from bridge.confbase import GatewayConfigBase
from bridge.errors import DeliveryError
from bridge.listing import read_window
from bridge.metrics import Metrics
from bridge.models import InboundSms, WebhookEvents
from bridge.ports import (
    CompletesPolled,
    PollsInbound,
    PollsStatus,
    RegistersWebhooks,
    SmsGateway,
)
from bridge.router import Router
from bridge.scheduler import Scheduler
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

CURSOR_REFRESH = 300.0  # seconds between writes of a window that found nothing new
WEBHOOK_GRACE = 60.0  # seconds a webhook may reasonably take to follow its SMS
DOWN_AFTER = 3  # consecutive failed polls before /healthz calls the gateway down
STATUS_MAX_AGE = 48 * 3600.0  # stop asking about an SMS after two days
STATUS_PAGE = 200  # SMS asked about per status poll
# Seconds take() waits for the webhook registration; a slower one (a phone that hangs until
# its timeout) goes on in the background: the lease keeper's round must not wait for it.
REGISTER_WAIT = 2.0
POLL_KINDS = ("inbound", "status")  # the kind label of smsbridge_poll_lag_seconds
_KIND_OF_JOB = {"poll": "inbound", "safety": "inbound", "status": "status"}


class Poller:
    """The scheduled jobs of one gateway, and what they say about its health."""

    def __init__(
        self,
        gateway: SmsGateway,
        config: GatewayConfigBase,
        store: SqlStore,
        router: Router,
        metrics: Metrics,
    ) -> None:
        self.gateway = gateway
        self.config = config
        self.store = store
        self.router = router
        self.metrics = metrics
        self.name = gateway.name
        self.failures = 0
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self.failed_at: float | None = None  # the last failed poll, by our clock
        self.last_ok_of: dict[str, float] = {}  # per kind of POLL_KINDS
        self._taken_at = 0.0
        self._polling: set[str] = set()  # the kinds polled here (while this instance owns them)
        # Status polls take a page of waiting SMS at a time, going round: SMS that never get a
        # receipt (many carriers send none) must not keep newer ones from being asked about.
        self._status_after = 0
        # Safety net: when each id left for later (a webhook might still bring it) was first
        # listed, by our clock.
        self._deferred: dict[str, float] = {}
        self._jobs: list[str] = []
        self.refused: str | None = None  # why the gateway refused our webhooks, for good
        self._registering: asyncio.Task[None] | None = None

    async def take(self, scheduler: Scheduler) -> None:
        """This instance now owns the gateway's polling and its webhook registration."""
        if isinstance(self.gateway, RegistersWebhooks):
            self._registering = asyncio.create_task(
                self._register(self.gateway), name=f"register:{self.name}"
            )
            await asyncio.wait({self._registering}, timeout=REGISTER_WAIT)
        self._jobs = []
        self._taken_at = time.time()
        if isinstance(self.gateway, PollsInbound):
            if self.config.polls:
                self._every(scheduler, "poll", self.config.poll_interval, self.poll_inbound)
            elif self.config.safety_poll_interval:
                self._every(scheduler, "safety", self.config.safety_poll_interval, self.safety_poll)
        if isinstance(self.gateway, PollsStatus):
            self._every(scheduler, "status", self.config.status_poll_interval, self.poll_status)

    async def _register(self, gateway: RegistersWebhooks) -> None:
        try:
            await gateway.register_webhooks()
            self.refused = None
        except DeliveryError as exc:
            # A config problem (credentials, URL): polls still run, /healthz says down.
            self.refused = f"webhook registration refused: {exc.reason}"
            log.error("%s: %s", self.name, self.refused, extra={"gateway": self.name})

    def _every(
        self, scheduler: Scheduler, kind: str, seconds: float, job: Callable[[], Any]
    ) -> None:
        name = f"{kind}:{self.name}"
        scheduler.every(name, seconds, job)
        self._jobs.append(name)
        self._polling.add(_KIND_OF_JOB[kind])

    async def give_up(self, scheduler: Scheduler) -> None:
        """Another instance owns the polling now (a poll under way ends by itself: what it
        stores is de-duplicated like any redelivery)."""
        for name in self._jobs:
            scheduler.remove(name)
        self._jobs = []
        # A standby is healthy: what this instance last saw of its polls (or of a refused
        # registration) is the new owner's to report now, or /healthz would stay 503.
        self.failures = 0
        self.last_error = None
        registering, self._registering = self._registering, None
        if registering is not None:
            registering.cancel()
            await asyncio.gather(registering, return_exceptions=True)
        self.refused = None
        self._polling = set()
        if isinstance(self.gateway, RegistersWebhooks):
            await self.gateway.stop_registering()

    async def poll_inbound(self) -> None:
        """``receive: poll`` (or ``both``): every new row of the listing since the last poll."""
        await self._list(f"poll:{self.name}", self.config.poll_overlap, "poll")

    async def safety_poll(self) -> None:
        """``receive: webhook``: what the webhooks of the last ``safety_poll_window`` missed.

        A row the webhooks may still be delivering (dated within ``WEBHOOK_GRACE`` or ahead of
        our clock) is left for later rounds until it has been listed for ``WEBHOOK_GRACE`` by
        our clock, so a webhook that is merely in flight is not counted as lost, however short
        the interval (and a clock running ahead cannot hold a row back for long).
        """
        deferring: dict[str, float] = {}

        def settled(sms: InboundSms, started: float) -> bool:
            if sms.received_at.timestamp() <= started - WEBHOOK_GRACE:
                return True
            first = self._deferred.get(sms.provider_id, started)
            if started - first >= WEBHOOK_GRACE:
                return True
            deferring[sms.provider_id] = first
            return False

        found = await self._list(
            f"safety:{self.name}", self.config.safety_poll_window, "safety", settled
        )
        if found is None:
            return
        self._deferred = deferring
        if found:
            self.metrics.recovered.labels(self.name).inc(found)
            log.warning(
                "%s: the safety-net poll found %d SMS that no webhook delivered; check the "
                "webhook URL and the gateway's webhook settings",
                self.name,
                found,
                extra={"gateway": self.name},
            )

    async def _list(
        self,
        cursor_name: str,
        overlap: float,
        source: str,
        settled: Callable[[InboundSms, float], bool] | None = None,
    ) -> int | None:
        """One listing: ask from the stored window, keep rows new to the store and dated
        after the floor, store them with the moved window. How many were new; ``None`` if
        the gateway could not be asked."""
        assert isinstance(self.gateway, PollsInbound)
        started = time.time()
        window = read_window(
            await self.store.cursors.get(cursor_name), started, self.config.first_poll_lookback
        )
        margin = self.gateway.date_margin
        try:
            listed = await self.gateway.poll_inbound(window.since(overlap, margin))
        except DeliveryError as exc:
            self._failed("inbound", exc)
            return None
        # Keyed as the store keys them (a long id is stored as its digest).
        unique = {storable.key(sms.provider_id): sms for sms in listed}
        known = await self.store.inbound.known(self.name, list(unique))
        fresh = [
            sms
            for key, sms in unique.items()
            if key not in known
            and sms.received_at.timestamp() >= window.floor - margin
            and (settled is None or settled(sms, started))
        ]
        fresh.sort(key=lambda sms: (sms.received_at, sms.provider_id))
        if fresh and isinstance(self.gateway, CompletesPolled):
            try:
                fresh = await self.gateway.complete_polled(fresh)
            except DeliveryError as exc:
                self._failed("inbound", exc)
                return None
        # An older "checked" only widens the next window, so a quiet poll need not write.
        stale = window.checked is None or started - window.checked > CURSOR_REFRESH
        moved = (cursor_name, window.dump(started)) if fresh or stale else None
        new = await self.router.ingest(self.name, WebhookEvents(tuple(fresh)), moved, source)
        self._succeeded("inbound")
        if new:
            log.info("%s: %d new SMS by %s", self.name, new, source, extra={"gateway": self.name})
        return new

    async def poll_status(self) -> None:
        assert isinstance(self.gateway, PollsStatus)
        waiting = await self.store.outbound.awaiting_status(
            self.name, STATUS_MAX_AGE, self.gateway.awaits, STATUS_PAGE, self._status_after
        )
        # A short page ends the round: the next poll starts again from the oldest.
        self._status_after = waiting[-1].id if len(waiting) == STATUS_PAGE else 0
        sent = [sms for sms in waiting if sms.provider_id]
        if not sent:
            self.last_ok_of["status"] = time.time()  # nothing to ask about is no lag
            return
        try:
            updates = await self.gateway.poll_status(sent)
        except DeliveryError as exc:
            self._failed("status", exc)
            return
        await self.router.ingest(self.name, WebhookEvents(updates=tuple(updates)), None, "status")
        self._succeeded("status")

    def _failed(self, kind: str, exc: DeliveryError) -> None:
        self.failures += 1
        self.last_error = exc.reason
        self.failed_at = time.time()
        self.metrics.polls.labels(self.name, kind, "error").inc()
        self.metrics.error("poll", self.name, exc)
        log.warning(
            "%s: %s poll failed (%d in a row): %s",
            self.name,
            kind,
            self.failures,
            exc.reason,
            extra={"gateway": self.name},
        )

    def _succeeded(self, kind: str) -> None:
        self.failures = 0
        self.last_error = None
        self.last_ok = self.last_ok_of[kind] = time.time()
        self.metrics.polls.labels(self.name, kind, "ok").inc()

    def lags(self, now: float) -> dict[str, float]:
        """Seconds since each kind polled here last succeeded (or since this instance took
        the polling over, if it never has)."""
        return {
            kind: max(0.0, now - max(self.last_ok_of.get(kind, 0.0), self._taken_at))
            for kind in self._polling
        }

    def health(self) -> dict[str, Any]:
        state = "down" if self.failures >= DOWN_AFTER else "degraded" if self.failures else "ok"
        return {
            "state": "down" if self.refused else state,
            "receive": self.config.receive,
            "failures_in_a_row": self.failures,
            "last_error": self.refused or self.last_error,
            "last_ok": self.last_ok,
        }
