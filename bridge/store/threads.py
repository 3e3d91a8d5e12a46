"""Store queries for conversations (one per gateway and number) and their chat threads."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from bridge.models import Conversation
from bridge.store.base import Shared, Tx, now
from bridge.store.records import JobKind
from bridge.store.schema import chat_messages, contacts, conversations, named_threads, threads


def conversation_of(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        gateway=row.gateway,
        number=row.number,
        alias=row.alias,
        device=row.device,
        sim=row.sim,
    )


class Threads:
    """Who a number is, and which thread it has in each chat."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def conversation_in(
        self,
        tx: Tx,
        gateway: str,
        number: str,
        *,
        alias: str | None = None,
        device: str | None = None,
        sim: int | None = None,
    ) -> Conversation:
        """Get or create, refreshing alias/device/SIM when the gateway tells us newer ones.

        What the transaction learns reaches the shared cache only after it commits (``Tx``).
        """
        key = (gateway, number)
        cached = tx.learned.get(key) or self.shared.conversations.get(key)
        if cached is None:
            created = (
                await tx.conn.execute(
                    self.shared.insert_ignore(conversations)
                    .values(
                        gateway=gateway,
                        number=number,
                        alias=alias,
                        device=device,
                        sim=sim,
                        created_at=now(),
                    )
                    .returning(conversations.c.id)
                )
            ).scalar()
            if created is not None:  # new: what we inserted is what it is
                cached = Conversation(int(created), gateway, number, alias, device, sim)
                tx.learned[key] = cached
                return cached
            row = (
                await tx.conn.execute(
                    sa.select(conversations).where(
                        conversations.c.gateway == gateway, conversations.c.number == number
                    )
                )
            ).one()
            cached = conversation_of(row)
        changes: dict[str, Any] = {
            name: value
            for name, value in (("alias", alias), ("device", device), ("sim", sim))
            if value is not None and getattr(cached, name) != value
        }
        if changes:
            await tx.conn.execute(
                conversations.update().where(conversations.c.id == cached.id).values(**changes)
            )
            if "alias" in changes and not await self._has_name(tx, number):
                await self._queue_renames(tx, cached.id)
            cached = dataclasses.replace(cached, **changes)
        tx.learned[key] = cached
        return cached

    async def _has_name(self, tx: Tx, number: str) -> bool:
        """A person named the number: its titles show that name, whatever the gateway says."""
        named = sa.select(contacts.c.name).where(
            contacts.c.number == number, contacts.c.name.is_not(None)
        )
        return (await tx.conn.execute(named)).first() is not None

    async def reopen_in(self, tx: Tx, posted: set[tuple[int, str]]) -> None:
        """An SMS came in: the closed threads it is posted in, (conversation id, chat), are
        open again (a closed topic is reopened by the post that finds it closed). A thread it
        is not posted in stays closed: nothing would reopen it at the platform."""
        if not posted:
            return
        await tx.conn.execute(
            threads.update()
            .where(sa.tuple_(threads.c.conversation_id, threads.c.chat).in_(sorted(posted)))
            .where(threads.c.closed_at.is_not(None))
            .values(closed_at=None)
        )

    async def _queue_renames(self, tx: Tx, conversation_id: int) -> None:
        """Retitle every thread the number has, in the transaction that learned its alias.

        The job carries no title: the worker builds it from the conversation as it is when
        the job runs, so several renames in a row end on the newest alias. Queued before the
        SMS that brought the alias, so the thread is renamed before that SMS appears in it.
        """
        chats = (
            await tx.conn.execute(
                sa.select(threads.c.chat).where(threads.c.conversation_id == conversation_id)
            )
        ).scalars()
        await tx.add_jobs(
            [
                {"chat": chat, "kind": JobKind.RENAME.value, "conversation_id": conversation_id}
                for chat in chats
            ]
        )

    async def conversation(self, gateway: str, number: str) -> Conversation:
        async with self.shared.write() as tx:
            return await self.conversation_in(tx, gateway, number)

    async def conversation_by_id(self, conversation_id: int) -> Conversation:
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations).where(conversations.c.id == conversation_id)
                )
            ).one()
        return conversation_of(row)

    async def conversation_for_thread(self, chat: str, thread_id: str) -> Conversation | None:
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations)
                    .join(threads, threads.c.conversation_id == conversations.c.id)
                    .where(threads.c.chat == chat, threads.c.thread_id == thread_id)
                )
            ).first()
            if row is None:
                # A thread the number no longer uses (its first message was deleted and a new
                # one opened): what we posted there still says whose it is.
                row = (
                    await conn.execute(
                        sa.select(conversations)
                        .join(chat_messages, chat_messages.c.conversation_id == conversations.c.id)
                        .where(chat_messages.c.chat == chat, chat_messages.c.thread_id == thread_id)
                        .limit(1)
                    )
                ).first()
        return conversation_of(row) if row else None

    async def conversation_for_message(self, chat: str, message_id: str) -> Conversation | None:
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations)
                    .join(chat_messages, chat_messages.c.conversation_id == conversations.c.id)
                    .where(chat_messages.c.chat == chat, chat_messages.c.message_id == message_id)
                )
            ).first()
        return conversation_of(row) if row else None

    async def find(self, conversation_id: int, chat: str) -> str | None:
        """The number's thread in ``chat``, if it has one."""
        async with self.shared.read() as conn:
            value = (
                await conn.execute(
                    sa.select(threads.c.thread_id).where(
                        threads.c.conversation_id == conversation_id, threads.c.chat == chat
                    )
                )
            ).scalar()
        return str(value) if value is not None else None

    async def record(self, conversation_id: int, chat: str, thread_id: str) -> None:
        async with self.shared.write() as tx:
            await self.record_in(tx, conversation_id, chat, thread_id)

    async def record_in(self, tx: Tx, conversation_id: int, chat: str, thread_id: str) -> None:
        stamp = now()
        stmt = self.shared.insert(threads).values(
            conversation_id=conversation_id, chat=chat, thread_id=thread_id, created_at=stamp
        )
        # A recreated topic replaces the old one: one upsert, one round trip.
        await tx.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[threads.c.conversation_id, threads.c.chat],
                set_={"thread_id": thread_id, "created_at": stamp},
            )
        )

    async def record_named(self, chat: str, name: str, thread_id: str) -> None:
        stamp = now()
        async with self.shared.write() as tx:
            await tx.conn.execute(
                self.shared.insert(named_threads)
                .values(chat=chat, name=name, thread_id=thread_id, created_at=stamp)
                .on_conflict_do_update(
                    index_elements=[named_threads.c.chat, named_threads.c.name],
                    set_={"thread_id": thread_id, "created_at": stamp},
                )
            )

    async def is_named(self, chat: str, thread_id: str) -> bool:
        """Whether ``thread_id`` is a route's fixed thread (it gathers many numbers)."""
        async with self.shared.read() as conn:
            found = (
                await conn.execute(
                    sa.select(named_threads.c.name).where(
                        named_threads.c.chat == chat, named_threads.c.thread_id == thread_id
                    )
                )
            ).first()
        return found is not None

    async def is_closed(self, chat: str, thread_id: str) -> bool:
        """Whether a number's ``thread_id`` is closed by /close (until /reopen or its SMS)."""
        async with self.shared.read() as conn:
            found = (
                await conn.execute(
                    sa.select(threads.c.id).where(
                        threads.c.chat == chat,
                        threads.c.thread_id == thread_id,
                        threads.c.closed_at.is_not(None),
                    )
                )
            ).first()
        return found is not None

    async def replies_allowed(
        self, chat: str, conversation_id: int, message_id: str | None = None
    ) -> bool | None:
        """Whether the route that posted an SMS allowed replies (False: alerts only).

        The SMS is the one ``message_id`` showed; when that is none (no reply, or a reply to
        a notice or an echo), the conversation's latest SMS in ``chat``: a message in a
        number's thread answers what was posted there. None: no SMS of it was posted here.
        """
        shown = sa.select(chat_messages.c.replies).where(
            chat_messages.c.chat == chat, chat_messages.c.inbound_id.is_not(None)
        )
        async with self.shared.read() as conn:
            if message_id is not None:
                value = (
                    await conn.execute(shown.where(chat_messages.c.message_id == message_id))
                ).scalar()
                if value is not None:
                    return bool(value)
            value = (
                await conn.execute(
                    shown.where(chat_messages.c.conversation_id == conversation_id)
                    .order_by(chat_messages.c.id.desc())
                    .limit(1)
                )
            ).scalar()
        return None if value is None else bool(value)

    async def forget(self, chat: str, thread_id: str) -> int | None:
        """Drop a deleted thread from its number; the conversation id, if it was one."""
        async with self.shared.write() as tx:
            await tx.conn.execute(
                named_threads.delete().where(
                    named_threads.c.chat == chat, named_threads.c.thread_id == thread_id
                )
            )
            value = (
                await tx.conn.execute(
                    threads.delete()
                    .where(threads.c.chat == chat, threads.c.thread_id == thread_id)
                    .returning(threads.c.conversation_id)
                )
            ).scalar()
            if value is not None:
                # The chat's worker keeps the threads it knows in memory, and may run in another
                # instance than the one a deletion event reached: it must hear of it.
                tx.wake("forget", f"{chat}:{value}")
        return int(value) if value is not None else None
