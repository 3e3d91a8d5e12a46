"""How an outbound SMS's status moves: forward only, shown on every chat message mirroring it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bridge.models import DeliveryUpdate, Outbox, Status
from bridge.store.base import Tx, now
from bridge.store.records import JobKind
from bridge.store.schema import chat_messages, orphan_updates, outbox


def outbox_of(row: Any) -> Outbox:
    started = row.attempt_started_at
    return Outbox(
        id=row.id,
        conversation_id=row.conversation_id,
        gateway=row.gateway,
        to=row.number,
        text=row.text,
        status=Status(row.status),
        provider_id=row.provider_id,
        attempts=row.attempts,
        device=row.device,
        sim=row.sim,
        raw_status=row.raw_status,
        reason=row.reason,
        attempt_started_at=None if started is None else datetime.fromtimestamp(started, UTC),
    )


async def advance(tx: Tx, outbox_id: int, current: Status, update: DeliveryUpdate) -> bool:
    # queued < sent < failed < delivered: failed is terminal, but a late receipt wins.
    if update.status.rank <= current.rank:
        return False
    await tx.conn.execute(
        outbox.update()
        .where(outbox.c.id == outbox_id)
        .values(
            status=update.status.value,
            raw_status=update.raw_status[:255],
            reason=update.reason,
            updated_at=now(),
        )
    )
    return True


async def keep_orphan(tx: Tx, update: DeliveryUpdate) -> None:
    """An update for an SMS not (yet) known by its provider id: kept for ``adopt_orphans``."""
    await tx.conn.execute(
        orphan_updates.insert().values(
            gateway=update.gateway,
            provider_id=update.provider_id,
            status=update.status.value,
            raw_status=update.raw_status[:255],
            reason=update.reason,
            created_at=now(),
        )
    )


async def adopt_orphans(tx: Tx, outbox_id: int, gateway: str, provider_id: str) -> None:
    """Apply the updates that raced ahead of the send result, now that it names the SMS."""
    where = (orphan_updates.c.gateway == gateway) & (orphan_updates.c.provider_id == provider_id)
    rows = (
        await tx.conn.execute(sa.select(orphan_updates).where(where).order_by(orphan_updates.c.id))
    ).all()
    for row in rows:
        current = (
            await tx.conn.execute(sa.select(outbox.c.status).where(outbox.c.id == outbox_id))
        ).scalar_one()
        update = DeliveryUpdate(
            gateway, provider_id, Status(row.status), row.raw_status, row.reason
        )
        await advance(tx, outbox_id, Status(current), update)
    if rows:
        await tx.conn.execute(orphan_updates.delete().where(where))


async def queue_status_jobs(tx: Tx, outbox_id: int) -> None:
    """Show the SMS's status on every chat message mirroring it."""
    mirrors = (
        await tx.conn.execute(
            sa.select(
                chat_messages.c.chat,
                chat_messages.c.message_id,
                chat_messages.c.conversation_id,
            ).where(chat_messages.c.outbox_id == outbox_id)
        )
    ).all()
    await tx.add_jobs(
        [
            {
                "chat": m.chat,
                "kind": JobKind.STATUS.value,
                "conversation_id": m.conversation_id,
                "outbox_id": outbox_id,
                "message_id": m.message_id,
            }
            for m in mirrors
        ]
    )
