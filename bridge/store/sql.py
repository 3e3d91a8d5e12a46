"""The store: SQLite by default, PostgreSQL for shared deployments.

One query class per concept, all sharing one database object; each public method is one
transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from bridge.store.base import Shared, Wake, now
from bridge.store.contacts import Contacts
from bridge.store.cursors import Cursors
from bridge.store.desk import Desk
from bridge.store.engine import Database
from bridge.store.inbound import Inbound
from bridge.store.jobs import Jobs
from bridge.store.leases import Leases
from bridge.store.media import Media, purge_expired
from bridge.store.outbound import Outbound
from bridge.store.report import Report, Waiting
from bridge.store.schema import attachments, chat_jobs, orphan_updates, seen_events
from bridge.store.threads import Threads


class SqlStore:
    """Every durable operation of the bridge, by concept."""

    def __init__(self, db: Database, wake: Wake | None = None) -> None:
        self.db = db
        self.shared = shared = Shared(db, wake)
        self.cursors = Cursors(shared)
        self.threads = Threads(shared)
        self.contacts = Contacts(shared)
        self.desk = Desk(shared, self.cursors)
        self.inbound = Inbound(shared, self.threads, self.cursors, self.contacts)
        self.outbound = Outbound(shared, self.threads, self.cursors)
        self.media = Media(shared)
        self.jobs = Jobs(shared, self.threads, self.cursors)
        self.leases = Leases(shared)
        self.report = Report(shared)

    @classmethod
    async def open(cls, url: str, wake: Wake | None = None) -> SqlStore:
        """Connect and migrate the schema to the newest revision."""
        db = Database(url)
        try:
            await db.migrate()
        except BaseException:
            await db.dispose()
            raise
        return cls(db, wake)

    async def close(self) -> None:
        await self.db.dispose()

    async def queues(self) -> list[Waiting]:
        """Depth and oldest item of every non-empty queue: one query per table."""
        return await self.report.waiting()

    async def backlog(self) -> dict[str, dict[str, int]]:
        """Pending work per chat and per gateway (for /healthz)."""
        backlog: dict[str, dict[str, int]] = {"chat_jobs": {}, "outbox": {}}
        for queue in await self.queues():
            counts = backlog["outbox" if queue.queue == "outbound_sms" else "chat_jobs"]
            counts[queue.name] = counts.get(queue.name, 0) + queue.depth
        return backlog

    async def purge(self, older_than: float) -> int:
        """Forget finished jobs and old event ids, and the bytes of expired MMS files;
        messages and mappings are kept."""
        cutoff = now() - older_than
        async with self.shared.write() as tx:
            removed = 0
            for statement in (
                chat_jobs.delete().where(chat_jobs.c.state == "done", chat_jobs.c.done_at < cutoff),
                seen_events.delete().where(seen_events.c.created_at < cutoff),
                orphan_updates.delete().where(orphan_updates.c.created_at < cutoff),
                # Files posted long ago live on in the chats; their bytes need not stay here.
                attachments.update()
                .where(
                    attachments.c.created_at < cutoff,
                    attachments.c.data.is_not(None),
                    ~sa.exists().where(
                        chat_jobs.c.attachment_id == attachments.c.id,
                        chat_jobs.c.state == "pending",
                    ),
                )
                .values(data=None),
                purge_expired(),
            ):
                removed += (await tx.conn.execute(statement)).rowcount
        return removed
