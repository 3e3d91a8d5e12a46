"""Wake-ups from the other instances of a deployment: PostgreSQL LISTEN on its own connection.

A webhook taken by one instance queues a post that another instance's chat worker owns; the
transaction that queued it sends a NOTIFY (bridge/store/base.py) that arrives with its
commit. Without this the other worker would find the post at its next idle poll. Whenever
the connection is (re)made, every worker is woken: notices sent while it was down are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.engine import make_url

from bridge.store.base import CHANNEL, Wake

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds: a connection that died quietly is noticed this fast
RETRY_EVERY = 1.0


class Listener:
    def __init__(self, url: str, wake: Wake) -> None:
        # asyncpg's own DSN: the store URL without SQLAlchemy's "+asyncpg".
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for queue in payload.split():
            kind, _, name = queue.partition(":")
            self._wake(kind, name)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self._listen(failing)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("wake-ups from other instances lost for now: %s", exc)
                failing = True
            await asyncio.sleep(RETRY_EVERY)

    async def _listen(self, again: bool) -> None:
        """One connection, for as long as it lives; raises when it is gone."""
        closed = asyncio.Event()
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            # A restart of the database closes the connection: noticed at once. One that died
            # quietly (a network cut) is noticed by the check below.
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(CHANNEL, self._heard)
            if again:
                log.info("listening for other instances' wake-ups again")
            for kind in ("chat", "send"):
                self._wake(kind, "*")  # what was announced while we were not listening
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), CHECK_EVERY)
                if closed.is_set() or conn.is_closed():
                    raise ConnectionError("the database closed the connection")
                await asyncio.wait_for(conn.execute("SELECT 1"), CHECK_EVERY)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
