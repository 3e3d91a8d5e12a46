"""Store operations for what arrives from gateways: SMS, status updates, cursors, seen events."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from bridge.models import Attachment, DeliveryUpdate, Status
from bridge.store.aio import AsyncConnection
from bridge.store.base import Learned, StoreBase, now
from bridge.store.records import IngestItem, JobKind
from bridge.store.schema import (
    attachments,
    chat_jobs,
    chat_messages,
    cursors,
    inbound,
    orphan_updates,
    outbox,
    seen_events,
)


class InboxOps(StoreBase):
    async def ingest(
        self, items: Sequence[IngestItem], cursor: tuple[str, str] | None = None
    ) -> list[int | None]:
        """Store SMS and their chat posts in one transaction; ``None`` marks a duplicate.

        ``cursor`` (name, value) commits with them, so a poll is never half-remembered.
        """
        woken: set[str] = set()
        learned: Learned = {}
        async with self.db.write() as conn:
            results = await self._ingest_batch(conn, learned, items)
            if cursor is not None:
                await self._set_cursor(conn, *cursor)
        self._remember(learned)
        for item, result in zip(items, results, strict=True):
            if result is not None:
                woken.update(chat for chat, parts in item.posts if parts or item.sms.attachments)
        for chat in woken:
            self._wake("chat", chat)
        return results

    async def _ingest_batch(
        self, conn: AsyncConnection, learned: Learned, items: Sequence[IngestItem]
    ) -> list[int | None]:
        """A handful of statements for the whole batch, whatever its size.

        With aiosqlite every statement is a round trip to the database thread, which costs far
        more than the insert itself, so rows go in bulk rather than one SMS at a time.
        """
        results: list[int | None] = [None] * len(items)
        live = list(range(len(items)))
        first_of: dict[tuple[str, str], int] = {}
        for index in live:
            event = items[index].event
            if event is not None:
                first_of.setdefault(event, index)
        if first_of:
            new = await self._mark_seen_many(conn, list(first_of))

            def fresh(index: int) -> bool:
                event = items[index].event
                return event is None or (first_of[event] == index and event in new)

            live = [i for i in live if fresh(i)]
        if not live:
            return results
        stamp = now()
        conversation_ids: dict[int, int] = {}
        for index in live:
            sms = items[index].sms
            conversation = await self._conversation(
                conn,
                learned,
                sms.gateway,
                sms.sender,
                alias=sms.alias,
                device=sms.device,
                sim=sms.sim,
            )
            conversation_ids[index] = conversation.id
        returned = (
            await conn.execute(
                self.insert_ignore(inbound).returning(
                    inbound.c.id, inbound.c.gateway, inbound.c.provider_id
                ),
                [
                    {
                        "gateway": items[i].sms.gateway,
                        "provider_id": items[i].sms.provider_id,
                        "conversation_id": conversation_ids[i],
                        "text": items[i].sms.text,
                        "received_at": items[i].sms.received_at.timestamp(),
                        "created_at": stamp,
                    }
                    for i in live
                ],
            )
        ).all()
        new_ids = {(row.gateway, row.provider_id): int(row.id) for row in returned}
        for index in live:
            sms = items[index].sms
            # pop: the same SMS twice in one batch is new only the first time
            results[index] = new_ids.pop((sms.gateway, sms.provider_id), None)
        files = await self._store_attachments(conn, items, results, stamp)
        jobs: list[dict[str, object]] = []
        for index in live:
            inbound_id = results[index]
            if inbound_id is None:
                continue
            # Every row has every key: one executemany needs one shape.
            common = {
                "text": None,
                "attachment_id": None,
                "conversation_id": conversation_ids[index],
                "inbound_id": inbound_id,
                "state": "pending",
                "next_attempt_at": stamp,
                "created_at": stamp,
            }
            for chat, parts in items[index].posts:
                jobs.extend(
                    {**common, "chat": chat, "kind": JobKind.SMS.value, "text": part}
                    for part in parts
                )
                jobs.extend(
                    {**common, "chat": chat, "kind": JobKind.FILE.value, "attachment_id": file}
                    for file in files.get(inbound_id, ())
                )
        if jobs:
            await conn.execute(chat_jobs.insert(), jobs)
        return results

    async def _store_attachments(
        self,
        conn: AsyncConnection,
        items: Sequence[IngestItem],
        results: Sequence[int | None],
        stamp: float,
    ) -> dict[int, list[int]]:
        """Store the media of new SMS; their ids by inbound id, in order."""
        rows = [
            {
                "inbound_id": inbound_id,
                "position": position,
                "content_type": file.content_type[:255],
                "name": file.name[:255] if file.name else None,
                "data": file.data,
                "url": file.url,
                "created_at": stamp,
            }
            for item, inbound_id in zip(items, results, strict=True)
            if inbound_id is not None
            for position, file in enumerate(item.sms.attachments)
        ]
        if not rows:
            return {}
        returned = (
            await conn.execute(
                attachments.insert().returning(
                    attachments.c.id, attachments.c.inbound_id, attachments.c.position
                ),
                rows,
            )
        ).all()
        found: dict[int, list[tuple[int, int]]] = {}
        for row in returned:
            found.setdefault(int(row.inbound_id), []).append((int(row.position), int(row.id)))
        return {key: [i for _p, i in sorted(value)] for key, value in found.items()}

    async def attachment(self, attachment_id: int) -> tuple[str, Attachment]:
        """A stored attachment and the gateway its SMS came through."""
        query = (
            sa.select(attachments, inbound.c.gateway)
            .join(inbound, inbound.c.id == attachments.c.inbound_id)
            .where(attachments.c.id == attachment_id)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).one()
        file = Attachment(
            content_type=row.content_type,
            name=row.name,
            data=bytes(row.data) if row.data is not None else None,
            url=row.url,
        )
        return str(row.gateway), file

    async def _mark_seen_many(
        self, conn: AsyncConnection, keys: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Record event ids; returns those not seen before."""
        stamp = now()
        rows = (
            await conn.execute(
                self.insert_ignore(seen_events).returning(seen_events.c.source, seen_events.c.key),
                [{"source": s[:128], "key": k[:255], "created_at": stamp} for s, k in keys],
            )
        ).all()
        return {(row.source, row.key) for row in rows}

    async def apply_updates(
        self, updates: Sequence[DeliveryUpdate], event: tuple[str, str] | None = None
    ) -> list[int] | None:
        """Move outbound SMS forward (never back) and queue the new status for every mirror.

        Returns the ids of the outbox rows that changed, or ``None`` when ``event`` was seen
        before (a redelivery).
        """
        changed: list[int] = []
        woken: set[str] = set()
        async with self.db.write() as conn:
            if event is not None and not await self._mark_seen(conn, *event):
                return None
            for update in updates:
                row = (
                    await conn.execute(
                        sa.select(outbox.c.id, outbox.c.status).where(
                            outbox.c.gateway == update.gateway,
                            outbox.c.provider_id == update.provider_id,
                        )
                    )
                ).first()
                if row is None:
                    await conn.execute(
                        orphan_updates.insert().values(
                            gateway=update.gateway,
                            provider_id=update.provider_id,
                            status=update.status.value,
                            raw_status=update.raw_status[:255],
                            reason=update.reason,
                            created_at=now(),
                        )
                    )
                    continue
                if await self._advance(conn, row.id, Status(row.status), update):
                    woken.update(await self._queue_status_jobs(conn, row.id))
                    changed.append(row.id)
        for chat in woken:
            self._wake("chat", chat)
        return changed

    async def _advance(
        self, conn: AsyncConnection, outbox_id: int, current: Status, update: DeliveryUpdate
    ) -> bool:
        # queued < sent < failed < delivered: failed is terminal, but a late receipt wins.
        if update.status.rank <= current.rank:
            return False
        await conn.execute(
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

    async def _adopt_orphans(
        self, conn: AsyncConnection, outbox_id: int, gateway: str, provider_id: str
    ) -> None:
        where = (orphan_updates.c.gateway == gateway) & (
            orphan_updates.c.provider_id == provider_id
        )
        rows = (
            await conn.execute(sa.select(orphan_updates).where(where).order_by(orphan_updates.c.id))
        ).all()
        for row in rows:
            current = (
                await conn.execute(sa.select(outbox.c.status).where(outbox.c.id == outbox_id))
            ).scalar_one()
            update = DeliveryUpdate(
                gateway, provider_id, Status(row.status), row.raw_status, row.reason
            )
            await self._advance(conn, outbox_id, Status(current), update)
        if rows:
            await conn.execute(orphan_updates.delete().where(where))

    async def _queue_status_jobs(self, conn: AsyncConnection, outbox_id: int) -> set[str]:
        mirrors = (
            await conn.execute(
                sa.select(
                    chat_messages.c.chat,
                    chat_messages.c.message_id,
                    chat_messages.c.conversation_id,
                ).where(chat_messages.c.outbox_id == outbox_id)
            )
        ).all()
        stamp = now()
        if mirrors:
            await conn.execute(
                chat_jobs.insert(),
                [
                    {
                        "chat": m.chat,
                        "kind": JobKind.STATUS.value,
                        "conversation_id": m.conversation_id,
                        "outbox_id": outbox_id,
                        "message_id": m.message_id,
                        "state": "pending",
                        "next_attempt_at": stamp,
                        "created_at": stamp,
                    }
                    for m in mirrors
                ],
            )
        return {m.chat for m in mirrors}

    async def mark_seen(self, source: str, key: str) -> bool:
        """Record an event id; False when it was seen before."""
        async with self.db.write() as conn:
            return await self._mark_seen(conn, source, key)

    async def _mark_seen(self, conn: AsyncConnection, source: str, key: str) -> bool:
        result = await conn.execute(
            self.insert_ignore(seen_events)
            .values(source=source[:128], key=key[:255], created_at=now())
            .returning(seen_events.c.key)
        )
        return result.first() is not None

    async def known_inbound(self, gateway: str, provider_ids: Sequence[str]) -> set[str]:
        """Which of ``provider_ids`` this gateway's SMS already has (a poll's overlap)."""
        known: set[str] = set()
        async with self.db.read() as conn:
            for start in range(0, len(provider_ids), 500):  # bounded IN lists
                chunk = list(provider_ids[start : start + 500])
                rows = await conn.execute(
                    sa.select(inbound.c.provider_id).where(
                        inbound.c.gateway == gateway, inbound.c.provider_id.in_(chunk)
                    )
                )
                known.update(str(row[0]) for row in rows)
        return known

    async def get_cursor(self, name: str) -> str | None:
        async with self.db.read() as conn:
            value = (
                await conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name))
            ).scalar()
        return str(value) if value is not None else None

    async def set_cursor(self, name: str, value: str) -> None:
        async with self.db.write() as conn:
            await self._set_cursor(conn, name, value)

    async def _set_cursor(self, conn: AsyncConnection, name: str, value: str) -> None:
        updated = await conn.execute(
            cursors.update().where(cursors.c.name == name).values(value=value, updated_at=now())
        )
        if updated.rowcount == 0:
            await conn.execute(cursors.insert().values(name=name, value=value, updated_at=now()))
