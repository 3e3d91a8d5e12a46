"""Store queries for SMS leaving through gateways: the outbox, its attempts and its status."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from bridge.models import DeliveryUpdate, Outbox, SendResult, Status
from bridge.store.base import Shared, now
from bridge.store.cursors import Cursors
from bridge.store.media import add_media
from bridge.store.records import JobKind, OutboundRequest, PendingSms
from bridge.store.schema import chat_messages, contacts, outbox
from bridge.store.status import (
    adopt_orphans,
    advance,
    keep_orphan,
    outbox_of,
    queue_status_jobs,
)
from bridge.store.threads import Threads


class Outbound:
    """Outbound SMS from the chat message they came from to their last delivery status."""

    def __init__(self, shared: Shared, threads: Threads, cursors: Cursors) -> None:
        self.shared = shared
        self.threads = threads
        self.cursors = cursors

    async def enqueue(
        self,
        request: OutboundRequest,
        echoes: tuple[tuple[str, str], ...] = (),
        event: tuple[str, str] | None = None,
    ) -> int | None:
        """Commit an SMS to the outbox before anyone calls a gateway; ``None`` if already there.

        The chat message it came from becomes its first mirror (status shows there);
        ``echoes`` (chat, text) show it in the number's thread of other chats or topics;
        ``event`` (source, key) is the delivery that brought it, a duplicate if seen before.
        """
        stamp = now()
        async with self.shared.write() as tx:
            if event is not None and not await self.cursors.mark_seen(tx, *event):
                return None
            conversation = await self.threads.conversation_in(tx, request.gateway, request.number)
            outbox_id = (
                await tx.conn.execute(
                    self.shared.insert_ignore(outbox)
                    .values(
                        conversation_id=conversation.id,
                        gateway=request.gateway,
                        number=request.number,
                        text=request.text,
                        device=conversation.device,
                        sim=conversation.sim,
                        origin_chat=request.origin_chat,
                        origin_message_id=request.origin_message_id,
                        author=request.author[:255],
                        purpose=request.purpose,
                        status=Status.PENDING.value,
                        next_attempt_at=stamp,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                    .returning(outbox.c.id)
                )
            ).scalar()
            if outbox_id is None:
                return None
            await add_media(tx, int(outbox_id), request.media, stamp)
            if request.mirrored:
                await tx.conn.execute(
                    self.shared.insert_ignore(chat_messages).values(
                        chat=request.origin_chat,
                        message_id=request.origin_message_id,
                        thread_id=request.origin_thread_id,
                        conversation_id=conversation.id,
                        outbox_id=outbox_id,
                        created_at=stamp,
                    )
                )
            tx.wake("send", request.gateway)
            await queue_status_jobs(tx, outbox_id)
            await tx.add_jobs(
                [
                    {
                        "chat": chat,
                        "kind": JobKind.ECHO.value,
                        "conversation_id": conversation.id,
                        "outbox_id": outbox_id,
                        "text": text,
                    }
                    for chat, text in echoes
                ]
            )
        return int(outbox_id)

    async def next_pending(self, gateway: str) -> PendingSms | None:
        """The oldest SMS still to send through ``gateway`` (FIFO keeps a conversation in order)."""
        # The number's opt-out and block come along: they are checked at send time, so an SMS
        # queued before a STOP is refused too.
        query = (
            sa.select(outbox, contacts.c.opted_out_at, contacts.c.blocked_at)
            .outerjoin(contacts, contacts.c.number == outbox.c.number)
            .where(outbox.c.gateway == gateway, outbox.c.status == Status.PENDING.value)
            .order_by(outbox.c.id)
            .limit(1)
        )
        async with self.shared.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return PendingSms(
            outbox_of(row),
            float(row.next_attempt_at),
            bool(row.in_flight),
            float(row.created_at),
            purpose=row.purpose,
            opted_out=row.opted_out_at is not None,
            blocked=row.blocked_at is not None,
        )

    async def begin_attempt(self, outbox_id: int) -> None:
        async with self.shared.write() as tx:
            await tx.conn.execute(
                outbox.update()
                .where(outbox.c.id == outbox_id)
                .values(
                    attempts=outbox.c.attempts + 1,
                    in_flight=True,
                    attempt_started_at=now(),
                    updated_at=now(),
                )
            )

    async def record_sent(self, outbox_id: int, gateway: str, result: SendResult) -> None:
        """The gateway accepted it: keep its id, apply updates that raced ahead of us."""
        status = result.status if result.status.rank > Status.PENDING.rank else Status.QUEUED
        async with self.shared.write() as tx:
            await tx.conn.execute(
                outbox.update()
                .where(outbox.c.id == outbox_id)
                .values(
                    status=status.value,
                    provider_id=result.provider_id,
                    raw_status=result.raw_status[:255] or None,
                    reason=None,
                    in_flight=False,
                    updated_at=now(),
                )
            )
            if result.provider_id:
                await adopt_orphans(tx, outbox_id, gateway, result.provider_id)
            await queue_status_jobs(tx, outbox_id)

    async def retry_later(
        self, outbox_id: int, delay: float, reason: str, *, maybe_sent: bool
    ) -> None:
        """Try again after ``delay``; ``maybe_sent`` keeps it marked for reconciliation."""
        async with self.shared.write() as tx:
            await tx.conn.execute(
                outbox.update()
                .where(outbox.c.id == outbox_id)
                .values(
                    next_attempt_at=now() + delay,
                    reason=reason,
                    in_flight=maybe_sent,
                    updated_at=now(),
                )
            )
            tx.wake("send", "*")

    async def fail(self, outbox_id: int, reason: str, raw_status: str | None) -> None:
        async with self.shared.write() as tx:
            await tx.conn.execute(
                outbox.update()
                .where(outbox.c.id == outbox_id)
                .values(
                    status=Status.FAILED.value,
                    reason=reason,
                    raw_status=(raw_status or "")[:255] or None,
                    in_flight=False,
                    updated_at=now(),
                )
            )
            await queue_status_jobs(tx, outbox_id)

    async def apply_updates(
        self, updates: Sequence[DeliveryUpdate], event: tuple[str, str] | None = None
    ) -> list[int] | None:
        """Move outbound SMS forward (never back) and queue the new status for every mirror.

        Returns the ids of the outbox rows that changed, or ``None`` when ``event`` was seen
        before (a redelivery).
        """
        changed: list[int] = []
        async with self.shared.write() as tx:
            if event is not None and not await self.cursors.mark_seen(tx, *event):
                return None
            for update in updates:
                row = (
                    await tx.conn.execute(
                        sa.select(outbox.c.id, outbox.c.status).where(
                            outbox.c.gateway == update.gateway,
                            outbox.c.provider_id == update.provider_id,
                        )
                    )
                ).first()
                if row is None:
                    await keep_orphan(tx, update)
                elif await advance(tx, row.id, Status(row.status), update):
                    await queue_status_jobs(tx, row.id)
                    changed.append(row.id)
        return changed

    async def by_id(self, outbox_id: int) -> Outbox:
        async with self.shared.read() as conn:
            row = (await conn.execute(sa.select(outbox).where(outbox.c.id == outbox_id))).one()
        return outbox_of(row)

    async def by_origin(self, chat: str, message_id: str) -> Outbox | None:
        """The SMS a chat message became, if it became one."""
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(outbox).where(
                        outbox.c.origin_chat == chat, outbox.c.origin_message_id == message_id
                    )
                )
            ).first()
        return outbox_of(row) if row else None

    async def claimed_provider_ids(self, sms: Outbox) -> frozenset[str]:
        """Provider ids already recorded for other SMS with the same number and text."""
        async with self.shared.read() as conn:
            rows = await conn.execute(
                sa.select(outbox.c.provider_id).where(
                    outbox.c.gateway == sms.gateway,
                    outbox.c.number == sms.to,
                    outbox.c.text == sms.text,
                    outbox.c.id != sms.id,
                    outbox.c.provider_id.is_not(None),
                )
            )
        return frozenset(str(row[0]) for row in rows)

    async def awaiting_status(
        self,
        gateway: str,
        max_age: float,
        statuses: tuple[Status, ...] = (Status.QUEUED, Status.SENT),
        limit: int = 200,
        after: int = 0,
    ) -> list[Outbox]:
        """Accepted SMS still in one of ``statuses``, oldest first from id ``after``."""
        async with self.shared.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox)
                    .where(
                        outbox.c.gateway == gateway,
                        outbox.c.status.in_([s.value for s in statuses]),
                        outbox.c.provider_id.is_not(None),
                        outbox.c.created_at > now() - max_age,
                        outbox.c.id > after,
                    )
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            ).all()
        return [outbox_of(row) for row in rows]

    async def recent_outcomes(self, gateway: str, limit: int) -> list[Status]:
        """The statuses of the gateway's newest SMS past their send (not pending), newest
        first: the watchdog's "sends failing in a row"."""
        async with self.shared.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox.c.status)
                    .where(outbox.c.gateway == gateway, outbox.c.status != Status.PENDING.value)
                    .order_by(outbox.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [Status(row[0]) for row in rows]
