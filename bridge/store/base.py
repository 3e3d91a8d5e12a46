"""What every query class of the store shares: the database, wake-ups, one write transaction."""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from bridge.models import Conversation
from bridge.store.aio import AsyncConnection
from bridge.store.engine import Database
from bridge.store.schema import chat_jobs

# PostgreSQL's channel for wake-ups between the instances of a deployment (bridge/store/listen.py).
CHANNEL = "smsbridge_wake"
# (queue kind, name): "chat" is a chat's posts, "send" a gateway's outbox; "*" names them all.
# "forget" ("chat:conversation id") tells a chat's worker that a thread of its was deleted.
Wake = Callable[[str, str], None]
Learned = dict[tuple[str, str], Conversation]


def _no_wake(_kind: str, _name: str) -> None:
    return None


def now() -> float:
    return time.time()


class Tx:
    """One write transaction: its connection, and what to make known once it commits.

    Workers are woken, and conversations cached, only after the commit: a worker woken
    earlier would read before the rows exist, and another transaction (PostgreSQL runs them
    side by side) must never use a conversation row that may still roll back.
    """

    __slots__ = ("conn", "learned", "wakes")

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.learned: Learned = {}
        self.wakes: dict[tuple[str, str], None] = {}  # an ordered set

    def wake(self, kind: str, name: str) -> None:
        """Wake this queue's worker once the transaction commits."""
        self.wakes[(kind, name)] = None

    async def add_jobs(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Queue chat jobs, pending from now; each chat's worker is woken after the commit.

        The only way chat jobs are inserted, so none waits for a worker's idle poll. Rows
        give every other column they use, all the same ones (one executemany, one shape).
        """
        if not rows:
            return
        stamp = now()
        await self.conn.execute(
            chat_jobs.insert(),
            [
                {"state": "pending", "next_attempt_at": stamp, "created_at": stamp, **r}
                for r in rows
            ],
        )
        for row in rows:
            self.wake("chat", str(row["chat"]))


class Shared:
    """The database object every query class of one store shares."""

    def __init__(self, db: Database, wake: Wake | None = None) -> None:
        self.db = db
        self._wake = wake or _no_wake
        # Conversations are never deleted, so a process-local cache is always right and saves
        # a round trip on the hot intake path.
        self.conversations: dict[tuple[str, str], Conversation] = {}
        # The dialect's INSERT (for ON CONFLICT), imported for the store's dialect only: the
        # PostgreSQL dialect alone is about 2 MB a SQLite bridge need not carry.
        self.insert: Callable[[sa.Table], Any] = importlib.import_module(
            f"sqlalchemy.dialects.{db.dialect}"
        ).insert
        # Whether a queue's worker runs in another instance (set by the app on PostgreSQL):
        # its wake-up goes out as a NOTIFY of the same transaction, so it arrives with the
        # commit, never before. A lone instance runs every worker and notifies nobody.
        self.elsewhere: Callable[[str, str], bool] | None = None

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT … ON CONFLICT DO NOTHING for the store's dialect."""
        return self.insert(table).on_conflict_do_nothing()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One write transaction; what it learned and whom it wakes follow its commit."""
        async with self.db.write() as conn:
            tx = Tx(conn)
            yield tx
            elsewhere = self.elsewhere
            if elsewhere is not None and tx.wakes:
                far = [f"{kind}:{name}" for kind, name in tx.wakes if elsewhere(kind, name)]
                if far:
                    await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, " ".join(far))))
        self.conversations.update(tx.learned)
        for kind, name in tx.wakes:
            self._wake(kind, name)

    def read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self.db.read()
