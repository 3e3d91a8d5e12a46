"""The one APScheduler import: periodic jobs (polling, status checks, housekeeping)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)


class Scheduler:
    """Interval jobs on the bridge's event loop; a job never overlaps itself."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    def every(
        self, name: str, seconds: float, job: Callable[[], Awaitable[None]], *, now: bool = True
    ) -> None:
        """Run ``job`` every ``seconds`` (first run at once unless ``now`` is False)."""

        async def run() -> None:
            try:
                await job()
            except Exception:
                # A failing poll must not stop later polls; the job records its own health.
                log.exception("scheduled job %s failed", name)

        # next_run_time=None would mean "paused" to APScheduler: leave it out for the default.
        first = {"next_run_time": datetime.now(UTC)} if now else {}
        self._scheduler.add_job(
            run,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            id=name,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
            **first,
        )

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def jobs(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
