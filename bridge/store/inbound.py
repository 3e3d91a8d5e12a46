"""Store queries for SMS arriving from gateways: intake, a poll's overlap, their media."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa

from bridge.models import Attachment, Conversation
from bridge.store.base import Shared, Tx, now
from bridge.store.contacts import Contacts
from bridge.store.cursors import Cursors
from bridge.store.records import Delivery, IngestItem, JobKind, Stored
from bridge.store.schema import attachments, collapses, inbound
from bridge.store.threads import Threads


class Inbound:
    """Inbound SMS, stored once each together with the chat posts they become."""

    def __init__(
        self, shared: Shared, threads: Threads, cursors: Cursors, contacts: Contacts
    ) -> None:
        self.shared = shared
        self.threads = threads
        self.cursors = cursors
        self.contacts = contacts

    async def ingest(
        self, items: Sequence[IngestItem], cursor: tuple[str, str] | None = None
    ) -> list[Stored | None]:
        """Store SMS and their chat posts in one transaction; ``None`` marks a duplicate.

        ``cursor`` (name, value) commits with them, so a poll is never half-remembered. A
        blocked number's SMS is stored and not posted; a stop or start keyword changes its
        number's opt-out with it, so a redelivery changes nothing twice.
        """
        async with self.shared.write() as tx:
            results = await self._ingest_batch(tx, items)
            if cursor is not None:
                await self.cursors.set_in(tx, *cursor)
        return results

    async def _ingest_batch(self, tx: Tx, items: Sequence[IngestItem]) -> list[Stored | None]:
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
            new = await self.cursors.mark_seen_many(tx, list(first_of))

            def fresh(index: int) -> bool:
                event = items[index].event
                return event is None or (first_of[event] == index and event in new)

            live = [i for i in live if fresh(i)]
        if not live:
            return [None] * len(items)
        stamp = now()
        conversation_ids: dict[int, int] = {}
        conversations: dict[int, Conversation] = {}
        for index in live:
            sms = items[index].sms
            conversation = await self.threads.conversation_in(
                tx, sms.gateway, sms.sender, alias=sms.alias, device=sms.device, sim=sms.sim
            )
            conversation_ids[index] = conversation.id
            conversations[index] = conversation
        blocked = await self.contacts.blocked_in(tx, {items[i].sms.sender for i in live})
        returned = (
            await tx.conn.execute(
                self.shared.insert_ignore(inbound).returning(
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
        # A new SMS reopens its number's closed threads it is posted in (a redelivered one
        # does not, nor one from a blocked number: it is not posted).
        await self.threads.reopen_in(
            tx,
            {
                (conversation_ids[i], post.chat)
                for i in live
                if results[i] is not None and items[i].sms.sender not in blocked
                for post in items[i].posts
                if post.thread is None  # the number's own thread, not a route's fixed one
            },
        )
        files = await self._store_attachments(tx, items, results, stamp)
        jobs: list[dict[str, object]] = []
        changed: dict[int, bool] = {}  # a keyword that changed the number's opt-out
        for index in live:
            inbound_id = results[index]
            if inbound_id is None:
                continue
            conversation_id = conversation_ids[index]
            opt = items[index].opt
            if opt is not None and not await self.contacts.apply_in(
                tx, conversations[index], inbound_id, opt
            ):
                opt = None  # a start word from a number that never stopped: a plain SMS
            changed[index] = opt is not None
            if items[index].sms.sender in blocked:
                continue  # stored (and counted by the caller), never posted
            for post in items[index].posts:
                # Every row has every key: one executemany needs one shape.
                common = {
                    "chat": post.chat,
                    "text": None,
                    "attachment_id": None,
                    "conversation_id": conversation_id,
                    "inbound_id": inbound_id,
                    "fixed_thread": post.thread,
                    "replies": post.replies,
                }
                # After the SMS, in its thread; a reply to the notice answers the number too.
                notice: list[dict[str, object]] = (
                    [{**common, "kind": JobKind.NOTICE.value, "text": opt.notice}] if opt else []
                )
                if post.collapse and post.parts:
                    first, count = await self._collapse(
                        tx, post, conversation_id, inbound_id, items[index].sms.text, stamp
                    )
                    if first != inbound_id:  # a repeat: the first post shows the count
                        text = f"{post.parts[0]}\n(×{count})"
                        jobs.append(
                            {
                                **common,
                                "kind": JobKind.EDIT.value,
                                "inbound_id": first,
                                "text": text,
                            }
                        )
                        jobs.extend(notice)
                        continue
                jobs.extend(
                    {**common, "kind": JobKind.SMS.value, "text": part} for part in post.parts
                )
                jobs.extend(
                    {**common, "kind": JobKind.FILE.value, "attachment_id": file}
                    for file in files.get(inbound_id, ())
                )
                jobs.extend(notice)
        await tx.add_jobs(jobs)
        return [
            None
            if inbound_id is None
            else Stored(inbound_id, items[i].sms.sender in blocked, changed.get(i, False))
            for i, inbound_id in enumerate(results)
        ]

    async def _collapse(
        self,
        tx: Tx,
        post: Delivery,
        conversation_id: int,
        inbound_id: int,
        text: str,
        stamp: float,
    ) -> tuple[int, int]:
        """(the SMS whose post shows this text, how many times it came in the window).

        One upsert decides it under the row's lock, so two instances taking the same text at
        once still make one post and one count.
        """
        assert post.collapse is not None
        # Per thread too: a fan-out may post the same SMS in two threads of one chat, and each
        # post counts its own repeats.
        digest = hashlib.sha256(f"{post.thread or ''}\0{text}".encode()).hexdigest()
        statement = self.shared.insert(collapses).values(
            chat=post.chat,
            conversation_id=conversation_id,
            digest=digest,
            inbound_id=inbound_id,
            count=1,
            started_at=stamp,
        )
        fresh = collapses.c.started_at > stamp - post.collapse
        statement = statement.on_conflict_do_update(
            index_elements=[collapses.c.chat, collapses.c.conversation_id, collapses.c.digest],
            set_={
                "count": sa.case((fresh, collapses.c.count + 1), else_=1),
                "inbound_id": sa.case((fresh, collapses.c.inbound_id), else_=inbound_id),
                "started_at": sa.case((fresh, collapses.c.started_at), else_=stamp),
            },
        ).returning(collapses.c.inbound_id, collapses.c.count)
        row = (await tx.conn.execute(statement)).one()
        return int(row[0]), int(row[1])

    async def _store_attachments(
        self, tx: Tx, items: Sequence[IngestItem], results: Sequence[int | None], stamp: float
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
            await tx.conn.execute(
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
        async with self.shared.read() as conn:
            row = (await conn.execute(query)).one()
        file = Attachment(
            content_type=row.content_type,
            name=row.name,
            data=bytes(row.data) if row.data is not None else None,
            url=row.url,
        )
        return str(row.gateway), file

    async def known(self, gateway: str, provider_ids: Sequence[str]) -> set[str]:
        """Which of ``provider_ids`` this gateway's SMS already has (a poll's overlap)."""
        found: set[str] = set()
        async with self.shared.read() as conn:
            for start in range(0, len(provider_ids), 500):  # bounded IN lists
                chunk = list(provider_ids[start : start + 500])
                rows = await conn.execute(
                    sa.select(inbound.c.provider_id).where(
                        inbound.c.gateway == gateway, inbound.c.provider_id.in_(chunk)
                    )
                )
                found.update(str(row[0]) for row in rows)
        return found

    async def newest_stored(self, gateway: str) -> float | None:
        """When the newest inbound SMS of this gateway was stored (unix time), for the
        watchdog's "silent" check; by id, which follows the insert order (no index on time)."""
        async with self.shared.read() as conn:
            value = (
                await conn.execute(
                    sa.select(inbound.c.created_at)
                    .where(inbound.c.gateway == gateway)
                    .order_by(inbound.c.id.desc())
                    .limit(1)
                )
            ).scalar()
        return float(value) if value is not None else None
