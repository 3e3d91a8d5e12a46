"""Polling a gateway: inbound SMS with a stored cursor, and status of SMS still on their way."""

from __future__ import annotations

import logging
import time
from typing import Any

from bridge.confbase import GatewayConfigBase
from bridge.errors import DeliveryError
from bridge.metrics import Metrics
from bridge.ports import PollsInbound, PollsStatus, SmsGateway
from bridge.router import Router
from bridge.scheduler import Scheduler
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

DOWN_AFTER = 3  # consecutive failed polls before /healthz calls the gateway down
STATUS_MAX_AGE = 48 * 3600.0  # stop asking about an SMS after two days
STATUS_PAGE = 200  # SMS asked about per status poll


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
        # Status polls take a page of waiting SMS at a time, going round: SMS that never get a
        # receipt (many carriers send none) must not keep newer ones from being asked about.
        self._status_after = 0

    def schedule(self, scheduler: Scheduler) -> None:
        if self.config.polls and isinstance(self.gateway, PollsInbound):
            scheduler.every(f"poll:{self.name}", self.config.poll_interval, self.poll_inbound)
        if isinstance(self.gateway, PollsStatus):
            scheduler.every(
                f"status:{self.name}", self.config.status_poll_interval, self.poll_status
            )

    @property
    def cursor_name(self) -> str:
        return f"poll:{self.name}"

    async def poll_inbound(self) -> None:
        assert isinstance(self.gateway, PollsInbound)
        cursor = await self.store.get_cursor(self.cursor_name)
        try:
            messages, new_cursor = await self.gateway.poll_inbound(cursor)
        except DeliveryError as exc:
            self._failed("inbound", exc.reason)
            return
        changed = None if new_cursor in (None, cursor) else (self.cursor_name, str(new_cursor))
        new = await self.router.ingest_polled(self.name, messages, changed)
        self._succeeded("inbound")
        if new:
            log.info("%s: %d new SMS by polling", self.name, new)

    async def poll_status(self) -> None:
        assert isinstance(self.gateway, PollsStatus)
        waiting = await self.store.awaiting_status(
            self.name, STATUS_MAX_AGE, self.gateway.awaits, STATUS_PAGE, self._status_after
        )
        # A short page ends the round: the next poll starts again from the oldest.
        self._status_after = waiting[-1].id if len(waiting) == STATUS_PAGE else 0
        sent = [sms for sms in waiting if sms.provider_id]
        if not sent:
            return
        try:
            updates = await self.gateway.poll_status(sent)
        except DeliveryError as exc:
            self._failed("status", exc.reason)
            return
        await self.router.apply_updates(updates)
        self._succeeded("status")

    def _failed(self, kind: str, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        self.metrics.polls.labels(self.name, kind, "error").inc()
        log.warning("%s: %s poll failed (%d in a row): %s", self.name, kind, self.failures, reason)

    def _succeeded(self, kind: str) -> None:
        self.failures = 0
        self.last_error = None
        self.last_ok = time.time()
        self.metrics.polls.labels(self.name, kind, "ok").inc()

    def health(self) -> dict[str, Any]:
        state = "down" if self.failures >= DOWN_AFTER else "degraded" if self.failures else "ok"
        return {
            "state": state,
            "receive": self.config.receive,
            "failures_in_a_row": self.failures,
            "last_error": self.last_error,
            "last_ok": self.last_ok,
        }
