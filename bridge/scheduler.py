"""The one APScheduler import: periodic jobs (polling, status checks, housekeeping)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bridge.lifecycle import STOP_GRACE, settle

log = logging.getLogger(__name__)


class Scheduler:
    """Interval jobs on the bridge's event loop; a job never overlaps itself."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._runs: set[asyncio.Task[None]] = set()
        self._stopping = False

    def every(
        self, name: str, seconds: float, job: Callable[[], Awaitable[None]], *, now: bool = True
    ) -> None:
        """Run ``job`` every ``seconds`` (first run at once unless ``now`` is False)."""

        async def run() -> None:
            if self._stopping:
                return  # submitted just as the stop began
            task = asyncio.current_task()
            assert task is not None
            self._runs.add(task)
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Cut short by stop() after its grace period (settle says so): APScheduler
                # would log it as a failure, with a traceback, at ERROR.
            except Exception:
                # A failing poll must not stop later polls; the job records its own health.
                log.exception("scheduled job %s failed", name)
            finally:
                self._runs.discard(task)

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

    def remove(self, name: str) -> None:
        """Run ``name`` no more (a run under way finishes)."""
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(name)

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Start no new run; runs under way (a poll waiting for its gateway) get ``grace``
        seconds to finish, and only then are cancelled: APScheduler's own shutdown cancels
        them at once."""
        self._stopping = True
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        await settle(list(self._runs), grace, "scheduler")
        self._scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def jobs(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
