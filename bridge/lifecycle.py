"""How the bridge stops: calls in flight get a grace period, queued work waits in the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Any

log = logging.getLogger(__name__)

# Docker and systemd send SIGKILL 10 s after SIGTERM by default; what is still running after
# this long is cancelled, which the store survives like a kill (sends are reconciled).
STOP_GRACE = 8.0


class Deadline:
    """The end of a stop's grace period, shared by everything that stops together."""

    def __init__(self, seconds: float = STOP_GRACE) -> None:
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._at - time.monotonic())


async def settle(tasks: Collection[asyncio.Task[Any]], grace: float, what: str) -> None:
    """Let ``tasks`` finish for up to ``grace`` seconds, then cancel what is left."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    if pending:
        log.warning(
            "%s: %d call(s) still running after the grace period, cut short: %s",
            what,
            len(pending),
            "; ".join(_where(task) for task in pending),
        )
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)


def _where(task: asyncio.Task[Any]) -> str:
    """Where a task is waiting (the innermost frame of its stack): what held up a stop."""
    frames = task.get_stack()
    if not frames:
        return task.get_name()
    frame = frames[-1]
    return f"{task.get_name()} at {frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
