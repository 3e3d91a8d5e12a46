"""The gateway watchdog: tells a dead phone from a quiet day, and says so once in the ops chat.

Every ``watch_interval`` seconds the instance that owns the gateway's duty looks at what the
vendor reports about its phones (``ReportsDevices``), the gateway's polls, the newest inbound
SMS and the newest sends, and keeps a set of open incidents. Opening one posts one alert into
the ops chat's thread; closing it posts one "recovered"; checks in between post nothing. The
open incidents live in the store (a ``cursors`` row, written in the alert's own transaction),
so a restart or a takeover by another instance neither forgets an incident nor repeats it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bridge.confbase import GatewayConfigBase
from bridge.errors import DeliveryError
from bridge.metrics import Metrics
from bridge.models import DeviceStatus, Status
from bridge.ports import ReportsDevices, SmsGateway
from bridge.store.records import Notice
from bridge.store.sql import SqlStore

if TYPE_CHECKING:
    from bridge.config import OpsConfig
    from bridge.polling import Poller
    from bridge.scheduler import Scheduler

log = logging.getLogger(__name__)

Clock = Callable[[], float]

KINDS = ("offline", "battery_low", "silent", "sends_failing", "api_down")
WHAT = {
    "offline": "phone offline",
    "battery_low": "battery low",
    "silent": "no inbound SMS",
    "sends_failing": "sends failing",
    "api_down": "gateway API failing",
}
# A battery must climb this far above ``battery_low`` to count as recovered: one hovering at
# the threshold would otherwise alert and recover on every other check.
BATTERY_MARGIN = 5


def ago(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 3.5 h, 2 d."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


class Watchdog:
    """One gateway's incidents: evaluated by its duty's owner, shown by every instance."""

    def __init__(
        self,
        gateway: SmsGateway,
        config: GatewayConfigBase,
        store: SqlStore,
        metrics: Metrics,
        poller: Poller,
        ops: OpsConfig | None,
        clock: Clock = time.time,
    ) -> None:
        self.gateway = gateway
        self.config = config
        self.store = store
        self.metrics = metrics
        self.poller = poller
        self.ops = ops
        self.clock = clock
        self.name = gateway.name
        self.key = f"watchdog:{self.name}"
        self.active = False
        # Persisted: kind -> {"since": unix time, "detail": text}; when the API began failing
        # (by our clock); when watching began (the silence check's floor on an empty store).
        self.open: dict[str, dict[str, Any]] = {}
        self.failing_since: float | None = None
        self.answered_at: float | None = None  # the vendor's status call last succeeded
        self.started: float | None = None
        # Seen by the last check, for /healthz:
        self.devices: list[DeviceStatus] = []
        self.last_inbound: float | None = None
        self.last_check: float | None = None
        self.last_error: str | None = None

    async def take(self, scheduler: Scheduler) -> None:
        """This instance owns the gateway's duty: watch it (first check at once)."""
        await self._load()
        self.active = True
        scheduler.every(f"watch:{self.name}", self.config.watch_interval, self.check)

    async def give_up(self, scheduler: Scheduler) -> None:
        scheduler.remove(f"watch:{self.name}")
        self.active = False

    async def _load(self) -> None:
        raw = await self.store.cursors.get(self.key)
        state = json.loads(raw) if raw else {}
        self.open = dict(state.get("open") or {})
        self.failing_since = state.get("failing_since")
        self.started = state.get("started")

    def _dump(self) -> str:
        return json.dumps(
            {"open": self.open, "failing_since": self.failing_since, "started": self.started}
        )

    async def check(self) -> None:
        """One look at the gateway; posts only where an incident opens or ends."""
        # Read back what the store says first: another instance may have owned the duty
        # since this one last looked, and its alerts must not be repeated.
        await self._load()
        before = self._dump()
        now = self.clock()
        if self.started is None:
            self.started = now
        found, unknown = await self._evaluate(now)
        notices: list[str] = []
        events: list[tuple[str, str]] = []
        for kind in KINDS:
            if kind in found and kind not in self.open:
                self.open[kind] = {"since": now, "detail": found[kind]}
                notices.append(f"⚠️ Gateway {self.name}: {WHAT[kind]}. {found[kind]}")
                events.append((kind, "alert"))
            elif kind in self.open and kind not in found and kind not in unknown:
                lasted = ago(now - float(self.open.pop(kind)["since"]))
                notices.append(f"✅ Gateway {self.name}: {WHAT[kind]} is over (after {lasted}).")
                events.append((kind, "recovered"))
        state = self._dump()
        if notices or state != before:
            await self.store.jobs.add_notices(
                [self._notice(text) for text in notices] if self.ops else [],
                cursor=(self.key, state),
            )
        for (kind, event), text in zip(events, notices, strict=True):
            self.metrics.watchdog_alerts.labels(self.name, kind, event).inc()
            (log.warning if event == "alert" else log.info)("%s", text)
        self.last_check = now
        self._measure()

    def _notice(self, text: str) -> Notice:
        assert self.ops is not None
        return Notice(chat=self.ops.chat, text=text, fixed_thread=self.ops.thread)

    async def _evaluate(self, now: float) -> tuple[dict[str, str], set[str]]:
        """(incidents the gateway is in now with what to say, kinds that could not be judged)."""
        found: dict[str, str] = {}
        unknown: set[str] = set()
        failure: str | None = None
        if isinstance(self.gateway, ReportsDevices):
            try:
                self.devices = await self.gateway.device_status()
                self.last_error = None
                self.answered_at = time.time()
            except DeliveryError as exc:
                failure = self.last_error = exc.reason
                unknown |= {"offline", "battery_low"}  # no news is not good news
            else:
                found.update(self._devices(now))
        else:
            unknown |= {"offline", "battery_low"}
        # A poll that failed before the vendor last answered us is old news: the API is up
        # (with webhooks, the next safety poll may be ten minutes away).
        answered = self.answered_at or 0.0
        if failure is None and self.poller.failures and (self.poller.failed_at or 0.0) > answered:
            failure = self.poller.last_error or "polls failing"
        if failure is None:
            self.failing_since = None
        else:
            self.failing_since = self.failing_since or now
            if now - self.failing_since >= self.config.down_after:
                found["api_down"] = f"Failing for {ago(now - self.failing_since)}: {failure}"
        self.last_inbound = await self.store.inbound.newest_stored(self.name)
        silence = self.config.silence_after
        if silence is not None:
            floor = max(self.last_inbound or 0.0, self.started or now)
            if now - floor >= silence:
                since = "since watching began" if self.last_inbound is None else "for"
                found["silent"] = f"No SMS received {since} {ago(now - floor)}."
        needed = self.config.sends_failing_after
        outcomes = await self.store.outbound.recent_outcomes(self.name, needed)
        if len(outcomes) == needed and all(s is Status.FAILED for s in outcomes):
            found["sends_failing"] = f"The last {needed} SMS sent through it failed."
        return found, unknown

    def _devices(self, now: float) -> dict[str, str]:
        found: dict[str, str] = {}
        offline: list[str] = []
        for device in self.devices:
            seen = device.last_seen.timestamp() if device.last_seen is not None else None
            if device.online is False:
                offline.append(f"{device.device} reports offline")
            elif seen is not None and now - seen >= self.config.down_after:
                offline.append(f"{device.device} last seen {ago(now - seen)} ago")
        if offline:
            found["offline"] = "; ".join(offline) + "."
        threshold = self.config.battery_low
        if "battery_low" in self.open:
            threshold += BATTERY_MARGIN
        low = [
            f"{d.device} at {d.battery}%"
            for d in self.devices
            if d.battery is not None and d.battery < threshold
        ]
        if low:
            found["battery_low"] = f"{', '.join(low)} (alert under {self.config.battery_low}%)."
        return found

    def _measure(self) -> None:
        metrics, name = self.metrics, self.name
        metrics.gateway_healthy.labels(name).set(0 if self.open else 1)
        for kind in KINDS:
            metrics.gateway_incident.labels(name, kind).set(1 if kind in self.open else 0)
        for device in self.devices:
            if device.battery is not None:
                metrics.gateway_battery.labels(name, device.device).set(device.battery)
        if self.last_inbound is not None:
            metrics.gateway_last_inbound.labels(name).set(self.last_inbound)

    async def refresh(self) -> None:
        """On standby: the incidents as the owning instance recorded them (for /healthz)."""
        if not self.active:
            await self._load()

    def health(self) -> dict[str, Any]:
        """What /healthz shows; on standby, the incidents the owner recorded, and the devices
        and times this instance saw when it last owned the duty (if ever)."""
        return {
            "state": ("incident" if self.open else "ok") if self.active else "standby",
            "incidents": {
                kind: {"since": value["since"], "detail": value["detail"]}
                for kind, value in self.open.items()
            },
            "devices": [
                {
                    "device": d.device,
                    "online": d.online,
                    "battery": d.battery,
                    "last_seen": d.last_seen.astimezone(UTC).isoformat() if d.last_seen else None,
                }
                for d in self.devices
            ],
            "last_inbound": (
                datetime.fromtimestamp(self.last_inbound, UTC).isoformat()
                if self.last_inbound is not None
                else None
            ),
            "last_check": self.last_check,
            "last_error": self.last_error,
        }
