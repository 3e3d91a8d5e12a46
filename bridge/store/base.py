"""Shared plumbing of the SQL store: dialect-aware inserts, wake-ups, conversations and threads."""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bridge.models import Conversation
from bridge.store.aio import AsyncConnection
from bridge.store.engine import Database
from bridge.store.records import JobKind
from bridge.store.schema import chat_jobs, chat_messages, conversations, threads

Wake = Callable[[str, str], None]  # (queue kind: "chat" | "gateway", name)
Learned = dict[tuple[str, str], Conversation]


def _no_wake(_kind: str, _name: str) -> None:
    return None


def now() -> float:
    return time.time()


def conversation_of(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        gateway=row.gateway,
        number=row.number,
        alias=row.alias,
        device=row.device,
        sim=row.sim,
    )


class StoreBase:
    """State and helpers every part of the store uses."""

    def __init__(self, db: Database, wake: Wake | None = None) -> None:
        self.db = db
        self._wake = wake or _no_wake
        # Conversations are never deleted, so a process-local cache is always right and saves
        # a round trip on the hot intake path.
        self._conversations: dict[tuple[str, str], Conversation] = {}
        # The dialect's INSERT (for ON CONFLICT), imported for the store's dialect only: the
        # PostgreSQL dialect alone is about 2 MB a SQLite bridge need not carry.
        self._insert: Callable[[sa.Table], Any] = importlib.import_module(
            f"sqlalchemy.dialects.{db.dialect}"
        ).insert

    def set_wake(self, wake: Wake) -> None:
        self._wake = wake

    def insert_ignore(self, table: sa.Table) -> Any:
        """INSERT … ON CONFLICT DO NOTHING for the store's dialect."""
        return self._insert(table).on_conflict_do_nothing()

    async def _conversation(
        self,
        conn: AsyncConnection,
        learned: Learned,
        gateway: str,
        number: str,
        *,
        alias: str | None = None,
        device: str | None = None,
        sim: int | None = None,
    ) -> Conversation:
        """Get or create, refreshing alias/device/SIM when the gateway tells us newer ones.

        What a transaction learns goes in ``learned`` and reaches the shared cache only after
        it commits: another transaction (PostgreSQL runs them side by side) must never use a
        conversation row that may still roll back.
        """
        key = (gateway, number)
        cached = learned.get(key) or self._conversations.get(key)
        if cached is None:
            created = (
                await conn.execute(
                    self.insert_ignore(conversations)
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
                learned[key] = cached
                return cached
            row = (
                await conn.execute(
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
            await conn.execute(
                conversations.update().where(conversations.c.id == cached.id).values(**changes)
            )
            if "alias" in changes:
                await self._queue_renames(conn, cached.id)
            cached = dataclasses.replace(cached, **changes)
        learned[key] = cached
        return cached

    async def _queue_renames(self, conn: AsyncConnection, conversation_id: int) -> None:
        """Retitle every thread the number has, in the transaction that learned its alias.

        The job carries no title: the worker builds it from the conversation as it is when
        the job runs, so several renames in a row end on the newest alias. Queued before the
        SMS that brought the alias, so the thread is renamed before that SMS appears in it.
        """
        stamp = now()
        await conn.execute(
            chat_jobs.insert().from_select(
                ["chat", "kind", "conversation_id", "state", "next_attempt_at", "created_at"],
                sa.select(
                    threads.c.chat,
                    sa.literal(JobKind.RENAME.value),
                    threads.c.conversation_id,
                    sa.literal("pending"),
                    sa.literal(stamp),
                    sa.literal(stamp),
                ).where(threads.c.conversation_id == conversation_id),
            )
        )

    def _remember(self, learned: Learned) -> None:
        self._conversations.update(learned)

    async def conversation(self, gateway: str, number: str) -> Conversation:
        learned: Learned = {}
        async with self.db.write() as conn:
            found = await self._conversation(conn, learned, gateway, number)
        self._remember(learned)
        return found

    async def conversation_by_id(self, conversation_id: int) -> Conversation:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations).where(conversations.c.id == conversation_id)
                )
            ).one()
        return conversation_of(row)

    async def conversation_for_thread(self, chat: str, thread_id: str) -> Conversation | None:
        async with self.db.read() as conn:
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

    async def forget_thread(self, chat: str, thread_id: str) -> int | None:
        """Drop a deleted thread from its number; the conversation id, if it was one."""
        async with self.db.write() as conn:
            value = (
                await conn.execute(
                    threads.delete()
                    .where(threads.c.chat == chat, threads.c.thread_id == thread_id)
                    .returning(threads.c.conversation_id)
                )
            ).scalar()
        return int(value) if value is not None else None

    async def conversation_for_message(self, chat: str, message_id: str) -> Conversation | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations)
                    .join(chat_messages, chat_messages.c.conversation_id == conversations.c.id)
                    .where(chat_messages.c.chat == chat, chat_messages.c.message_id == message_id)
                )
            ).first()
        return conversation_of(row) if row else None

    async def thread_of(self, conversation_id: int, chat: str) -> str | None:
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    sa.select(threads.c.thread_id).where(
                        threads.c.conversation_id == conversation_id, threads.c.chat == chat
                    )
                )
            ).scalar()
        return str(value) if value is not None else None

    async def set_thread(self, conversation_id: int, chat: str, thread_id: str) -> None:
        async with self.db.write() as conn:
            await self._set_thread(conn, conversation_id, chat, thread_id)

    async def _set_thread(
        self, conn: AsyncConnection, conversation_id: int, chat: str, thread_id: str
    ) -> None:
        stamp = now()
        stmt = self._insert(threads).values(
            conversation_id=conversation_id, chat=chat, thread_id=thread_id, created_at=stamp
        )
        # A recreated topic replaces the old one: one upsert, one round trip.
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[threads.c.conversation_id, threads.c.chat],
                set_={"thread_id": thread_id, "created_at": stamp},
            )
        )
