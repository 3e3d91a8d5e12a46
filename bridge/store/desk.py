"""Store queries for the thread commands: names that retitle threads, closing, the status card.

Each change and the chat jobs that show it commit together, so a crash can neither lose the
rename (or close) nor apply it without its job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from bridge.models import Conversation, Outbox, Status
from bridge.store.base import Shared, Tx, now
from bridge.store.contacts import Contact
from bridge.store.cursors import Cursors
from bridge.store.jobs import notice_row
from bridge.store.records import JobKind, Notice
from bridge.store.schema import contacts, conversations, inbound, outbox, threads
from bridge.store.status import outbox_of


@dataclass(frozen=True, slots=True)
class Seen:
    """One message of a number, as the status card shows it."""

    at: float  # unix time
    text: str
    status: Status | None = None  # an outbound SMS's


@dataclass(frozen=True, slots=True)
class Card:
    """What ``/status`` shows about a number's conversation."""

    conversation: Conversation
    contact: Contact
    last_in: Seen | None
    last_out: Seen | None
    failed: int
    last_reason: str | None
    closed: bool


class Desk:
    """Names (with the renames they call for), closed threads, and a number at a glance."""

    def __init__(self, shared: Shared, cursors: Cursors) -> None:
        self.shared = shared
        self.cursors = cursors

    async def set_name(self, number: str, name: str | None) -> bool:
        """Give ``number`` a person's name (None clears it); False if it had that one already.

        Every thread the number has, through any gateway and in any chat, is retitled.
        """
        return bool(await self.set_names({number: name}))

    async def set_names(self, names: Mapping[str, str | None]) -> list[str]:
        """Set many names in one transaction (an import); the numbers whose name changed."""
        async with self.shared.write() as tx:
            changed = [n for n, name in names.items() if await self._name_in(tx, n, name)]
            await self._queue_renames(tx, changed)
        return changed

    async def _name_in(self, tx: Tx, number: str, name: str | None) -> bool:
        """One conditional statement: of two same /name at once (two instances on
        PostgreSQL), only one changes it, and only one rename is queued."""
        stamp = now()
        if name is None:
            done = await tx.conn.execute(
                contacts.update()
                .where(contacts.c.number == number, contacts.c.name.is_not(None))
                .values(name=None, updated_at=stamp)
            )
            return bool(done.rowcount)
        values = {"name": name, "updated_at": stamp}
        statement = self.shared.insert(contacts).values(number=number, **values)
        changed = await tx.conn.execute(
            statement.on_conflict_do_update(
                index_elements=[contacts.c.number],
                set_=values,
                where=sa.or_(contacts.c.name.is_(None), contacts.c.name != name),
            ).returning(contacts.c.number)
        )
        return changed.first() is not None

    async def _queue_renames(self, tx: Tx, numbers: list[str]) -> None:
        """The job carries no title: the worker reads the name as it is when the job runs."""
        rows: list[Any] = []
        for start in range(0, len(numbers), 500):
            rows += (
                await tx.conn.execute(
                    sa.select(threads.c.chat, threads.c.conversation_id)
                    .join(conversations, conversations.c.id == threads.c.conversation_id)
                    .where(conversations.c.number.in_(numbers[start : start + 500]))
                    .order_by(threads.c.id)
                )
            ).all()
        await tx.add_jobs(
            [
                {"chat": r.chat, "kind": JobKind.RENAME.value, "conversation_id": r.conversation_id}
                for r in rows
            ]
        )

    async def set_closed(
        self,
        chat: str,
        conversation_id: int,
        closed: bool,
        notices: Sequence[Notice] = (),
        dedupe: tuple[str, str] | None = None,
    ) -> bool | None:
        """Close (or reopen) the number's thread in ``chat`` and queue the job that does it at
        the platform; False if it was so already, None if the number has no thread there.

        ``notices`` announce it: posted before the thread closes (a post in a closed topic
        would reopen it), after it reopens; with ``dedupe`` (source, key) a redelivered
        command changes and announces nothing (its answer is then the caller's to skip).
        """
        async with self.shared.write() as tx:
            # Locked (PostgreSQL; SQLite has one writer): two /close at once, from two
            # instances, must not both see it open and both close and announce it.
            state = (
                await tx.conn.execute(
                    sa.select(threads.c.closed_at)
                    .where(threads.c.conversation_id == conversation_id, threads.c.chat == chat)
                    .with_for_update()
                )
            ).first()
            if state is None:
                return None
            if (state.closed_at is not None) == closed:
                return False
            if dedupe is not None and not await self.cursors.mark_seen(tx, *dedupe):
                return False
            await tx.conn.execute(
                threads.update()
                .where(threads.c.conversation_id == conversation_id, threads.c.chat == chat)
                .values(closed_at=now() if closed else None)
            )
            kind = JobKind.CLOSE if closed else JobKind.REOPEN
            job: dict[str, object] = {
                "chat": chat,
                "kind": kind.value,
                "conversation_id": conversation_id,
            }
            # The notices join the job's conversation: posted in order with it, not beside
            # it (a close first would leave them to a closed topic, which refuses them).
            rows = [notice_row(replace(n, conversation_id=conversation_id)) for n in notices]
            # One shape per executemany: the notices, then the job (or the other way round).
            if not closed:
                await tx.add_jobs([job])
            await tx.add_jobs(rows)
            if closed:
                await tx.add_jobs([job])
        return True

    async def last_failed(self, conversation_id: int) -> Outbox | None:
        """The conversation's newest SMS out that failed, if any."""
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(outbox)
                    .where(
                        outbox.c.conversation_id == conversation_id,
                        outbox.c.status == Status.FAILED.value,
                    )
                    .order_by(outbox.c.id.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else outbox_of(row)

    async def card(self, conversation: Conversation, chat: str) -> Card:
        """What /status shows: a handful of indexed reads, one transaction."""
        number = conversation.number
        failed = sa.and_(
            outbox.c.conversation_id == conversation.id, outbox.c.status == Status.FAILED.value
        )
        async with self.shared.read() as conn:
            row = (
                await conn.execute(sa.select(contacts).where(contacts.c.number == number))
            ).first()
            got = (
                await conn.execute(
                    sa.select(inbound.c.received_at, inbound.c.text)
                    .where(inbound.c.conversation_id == conversation.id)
                    .order_by(inbound.c.id.desc())
                    .limit(1)
                )
            ).first()
            sent = (
                await conn.execute(
                    sa.select(outbox.c.created_at, outbox.c.text, outbox.c.status)
                    .where(outbox.c.conversation_id == conversation.id)
                    .order_by(outbox.c.id.desc())
                    .limit(1)
                )
            ).first()
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(failed))
            ).scalar()
            reason = (
                await conn.execute(
                    sa.select(outbox.c.reason).where(failed).order_by(outbox.c.id.desc()).limit(1)
                )
            ).scalar()
            closed = (
                await conn.execute(
                    sa.select(threads.c.closed_at).where(
                        threads.c.conversation_id == conversation.id, threads.c.chat == chat
                    )
                )
            ).scalar()
        contact = (
            Contact(number)
            if row is None
            else Contact(number, row.name, row.opted_out_at is not None, row.blocked_at is not None)
        )
        return Card(
            conversation=conversation,
            contact=contact,
            last_in=None if got is None else Seen(float(got.received_at), got.text),
            last_out=None
            if sent is None
            else Seen(float(sent.created_at), sent.text, Status(sent.status)),
            failed=int(count or 0),
            last_reason=reason,
            closed=closed is not None,
        )
