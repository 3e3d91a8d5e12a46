"""Store queries for the chat side: the per-chat job queue and the messages it posted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from bridge.models import Status
from bridge.store.base import Shared, Tx, now
from bridge.store.cursors import Cursors
from bridge.store.records import ChatJob, JobKind, Notice, PostDone
from bridge.store.schema import chat_jobs, chat_messages, contacts, conversations, named_threads
from bridge.store.schema import threads as thread_rows
from bridge.store.threads import Threads


def job_of(row: Any) -> ChatJob:
    mapping = row._mapping
    return ChatJob(
        number=mapping.get("number"),
        alias=mapping.get("alias"),
        # A fixed thread's id, or the number's own thread's: where the job posts, if known.
        known_thread=mapping.get("named_thread" if row.fixed_thread else "known_thread"),
        id=row.id,
        chat=row.chat,
        kind=JobKind(row.kind),
        conversation_id=row.conversation_id,
        inbound_id=row.inbound_id,
        outbox_id=row.outbox_id,
        text=row.text,
        thread_id=row.thread_id,
        message_id=row.message_id,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        attachment_id=row.attachment_id,
        private_to=row.private_to,
        fixed_thread=row.fixed_thread,
        replies=bool(row.replies),
    )


def notice_row(notice: Notice) -> dict[str, object]:
    """The chat job that posts a notice."""
    return {
        "chat": notice.chat,
        "kind": JobKind.NOTICE.value,
        "conversation_id": notice.conversation_id,
        "text": notice.text,
        "thread_id": notice.thread_id,
        "message_id": notice.reply_to,
        "private_to": notice.private_to,
        "fixed_thread": notice.fixed_thread,
    }


class Jobs:
    """Each chat's queue of posts, edits and reactions, and the chat messages they made."""

    def __init__(self, shared: Shared, threads: Threads, cursors: Cursors) -> None:
        self.shared = shared
        self.threads = threads
        self.cursors = cursors

    async def head(self, chat: str) -> ChatJob | None:
        """The oldest pending job of a chat: FIFO keeps every thread in order."""
        jobs = await self.pending(chat, 1)
        return jobs[0] if jobs else None

    async def pending(self, chat: str, limit: int) -> list[ChatJob]:
        """The oldest pending jobs of a chat, in order, with their number and thread."""
        query = (
            sa.select(
                chat_jobs,
                conversations.c.number,
                # The name a person gave the number wins over the gateway's alias.
                sa.func.coalesce(contacts.c.name, conversations.c.alias).label("alias"),
                thread_rows.c.thread_id.label("known_thread"),
                named_threads.c.thread_id.label("named_thread"),
            )
            .outerjoin(conversations, conversations.c.id == chat_jobs.c.conversation_id)
            .outerjoin(contacts, contacts.c.number == conversations.c.number)
            .outerjoin(
                thread_rows,
                (thread_rows.c.conversation_id == chat_jobs.c.conversation_id)
                & (thread_rows.c.chat == chat_jobs.c.chat),
            )
            .outerjoin(
                named_threads,
                (named_threads.c.chat == chat_jobs.c.chat)
                & (named_threads.c.name == chat_jobs.c.fixed_thread),
            )
            .where(chat_jobs.c.chat == chat, chat_jobs.c.state == "pending")
            .order_by(chat_jobs.c.id)
            .limit(limit)
        )
        async with self.shared.read() as conn:
            rows = (await conn.execute(query)).all()
        return [job_of(row) for row in rows]

    async def add_notices(
        self,
        notices: Sequence[Notice],
        dedupe: tuple[str, str] | None = None,
        cursor: tuple[str, str] | None = None,
    ) -> bool:
        """Queue bridge messages; with ``dedupe`` (source, key) only the first call does.

        ``cursor`` (name, value) is set in the same transaction: the watchdog's incident state
        and its alert are committed together, so a crash can neither lose nor repeat one.
        """
        async with self.shared.write() as tx:
            if dedupe is not None and not await self.cursors.mark_seen(tx, *dedupe):
                return False
            if cursor is not None:
                await self.cursors.set_in(tx, *cursor)
            await tx.add_jobs([notice_row(n) for n in notices])
        return True

    async def complete_post(
        self,
        job: ChatJob,
        message_ids: Sequence[str],
        thread_id: str | None,
        *,
        new_thread: bool = False,
    ) -> None:
        await self.complete_posts([PostDone(job, tuple(message_ids), thread_id, new_thread)])

    async def complete_posts(self, done: Sequence[PostDone]) -> list[None]:
        """Mark posts done and remember what they became, in one transaction.

        Posted messages map back to their conversation (a reply to any of them answers that
        number); an echo becomes a mirror of its SMS and gets the SMS's status shown; a thread
        opened for a post is recorded with it. Bulk statements: with aiosqlite every statement
        is a round trip to the database thread.
        """
        stamp = now()
        mapped: list[dict[str, object]] = []
        statuses: list[dict[str, object]] = []
        for entry in done:
            job = entry.job
            if job.conversation_id is None:
                continue
            for message_id in entry.message_ids:
                mapped.append(
                    {
                        "chat": job.chat,
                        "message_id": message_id,
                        "thread_id": entry.thread_id,
                        "conversation_id": job.conversation_id,
                        "inbound_id": job.inbound_id,
                        "outbox_id": job.outbox_id if job.kind is JobKind.ECHO else None,
                        "replies": job.replies,
                        "created_at": stamp,
                    }
                )
                if job.kind is JobKind.ECHO and job.outbox_id is not None:
                    statuses.append(
                        {
                            "chat": job.chat,
                            "kind": JobKind.STATUS.value,
                            "conversation_id": job.conversation_id,
                            "outbox_id": job.outbox_id,
                            "message_id": message_id,
                        }
                    )
        async with self.shared.write() as tx:
            await tx.conn.execute(
                chat_jobs.update()
                .where(chat_jobs.c.id.in_([entry.job.id for entry in done]))
                .values(state="done", done_at=stamp, attempts=chat_jobs.c.attempts + 1)
            )
            for entry in done:
                fixed = entry.job.fixed_thread is not None  # recorded when opened
                if entry.new_thread and entry.thread_id and entry.job.conversation_id and not fixed:
                    await self.threads.record_in(
                        tx, entry.job.conversation_id, entry.job.chat, entry.thread_id
                    )
            if mapped:
                await tx.conn.execute(self.shared.insert_ignore(chat_messages), mapped)
            await tx.add_jobs(statuses)  # wakes this chat's worker: the echo's status is due
        return [None] * len(done)

    async def complete_status(self, job: ChatJob, shown: Status | None) -> None:
        async with self.shared.write() as tx:
            await self._done(tx, job.id)
            if shown is not None and job.message_id is not None:
                await tx.conn.execute(
                    chat_messages.update()
                    .where(
                        chat_messages.c.chat == job.chat,
                        chat_messages.c.message_id == job.message_id,
                    )
                    .values(shown_status=shown.value)
                )

    async def first_message(
        self, chat: str, inbound_id: int, thread_id: str | None = None
    ) -> str | None:
        """The chat message that first showed an inbound SMS in ``thread_id`` (a collapse edits
        it): a fan-out may have shown it in several threads of the chat."""
        found = sa.select(chat_messages.c.message_id).where(
            chat_messages.c.chat == chat, chat_messages.c.inbound_id == inbound_id
        )
        if thread_id is not None:
            found = found.where(chat_messages.c.thread_id == thread_id)
        async with self.shared.read() as conn:
            value = (await conn.execute(found.order_by(chat_messages.c.id).limit(1))).scalar()
        return str(value) if value is not None else None

    async def shown_status(self, chat: str, message_id: str) -> tuple[Status | None, str | None]:
        """(status shown on a chat message, the thread it is in)."""
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(chat_messages.c.shown_status, chat_messages.c.thread_id).where(
                        chat_messages.c.chat == chat, chat_messages.c.message_id == message_id
                    )
                )
            ).first()
        if row is None:
            return None, None
        return (Status(row.shown_status) if row.shown_status else None), row.thread_id

    async def _done(self, tx: Tx, job_id: int) -> None:
        await tx.conn.execute(
            chat_jobs.update()
            .where(chat_jobs.c.id == job_id)
            .values(state="done", done_at=now(), attempts=chat_jobs.c.attempts + 1)
        )

    async def defer(self, job_id: int, delay: float, error: str) -> None:
        async with self.shared.write() as tx:
            await tx.conn.execute(
                chat_jobs.update()
                .where(chat_jobs.c.id == job_id)
                .values(
                    next_attempt_at=now() + delay,
                    attempts=chat_jobs.c.attempts + 1,
                    last_error=error[:2000],
                )
            )

    async def fail(self, job_id: int, error: str) -> None:
        async with self.shared.write() as tx:
            await tx.conn.execute(
                chat_jobs.update()
                .where(chat_jobs.c.id == job_id)
                .values(
                    state="failed",
                    done_at=now(),
                    attempts=chat_jobs.c.attempts + 1,
                    last_error=error[:2000],
                )
            )
