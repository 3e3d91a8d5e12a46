"""Store queries for what people know about a number: its name, opt-out and block.

Keyed by number alone, whatever gateway it writes through: a customer who said STOP said it
to us, and a person's name for a number is the same in every chat.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bridge.models import Conversation, Status
from bridge.store.base import Shared, Tx, now
from bridge.store.records import OptChange
from bridge.store.schema import contacts, outbox

CONFIRMATIONS = "opt-out"  # the origin_chat of confirmation texts: their origin is the STOP


@dataclass(frozen=True, slots=True)
class Contact:
    number: str
    name: str | None = None
    opted_out: bool = False
    blocked: bool = False


def _contact(row: Any) -> Contact:
    return Contact(
        number=row.number,
        name=row.name,
        opted_out=row.opted_out_at is not None,
        blocked=row.blocked_at is not None,
    )


class Contacts:
    """Names, opt-outs and blocks, by number."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def get(self, number: str) -> Contact:
        """What we know of ``number``; a number never seen is a plain, reachable one."""
        async with self.shared.read() as conn:
            row = (
                await conn.execute(sa.select(contacts).where(contacts.c.number == number))
            ).first()
        return Contact(number) if row is None else _contact(row)

    async def get_in(self, tx: Tx, number: str) -> Contact:
        row = (
            await tx.conn.execute(sa.select(contacts).where(contacts.c.number == number))
        ).first()
        return Contact(number) if row is None else _contact(row)

    async def blocked_in(self, tx: Tx, numbers: Collection[str]) -> set[str]:
        """Which of ``numbers`` are blocked: their SMS are stored, not posted."""
        if not numbers:
            return set()
        rows = await tx.conn.execute(
            sa.select(contacts.c.number).where(
                contacts.c.number.in_(sorted(numbers)), contacts.c.blocked_at.is_not(None)
            )
        )
        return {row.number for row in rows}

    async def apply_in(
        self, tx: Tx, conversation: Conversation, inbound_id: int, change: OptChange
    ) -> bool:
        """A stop or start keyword from the conversation's number, in its SMS's transaction:
        the number opts out or back in, and a stop's confirmation is queued, once (its origin
        is the SMS). False for a start from a number that had not opted out: "yes" answers
        a question far more often, and then changes nothing."""
        if not change.opted_out and not (await self.get_in(tx, conversation.number)).opted_out:
            return False
        stamp = now()
        await self.set_in(tx, conversation.number, opted_out_at=stamp if change.opted_out else None)
        if change.confirmation is None:
            return True
        await tx.conn.execute(
            self.shared.insert_ignore(outbox).values(
                conversation_id=conversation.id,
                gateway=conversation.gateway,
                number=conversation.number,
                text=change.confirmation,
                device=conversation.device,
                sim=conversation.sim,
                origin_chat=CONFIRMATIONS,
                origin_message_id=str(inbound_id),
                author="smsbridge",
                purpose="confirmation",
                status=Status.PENDING.value,
                next_attempt_at=stamp,
                created_at=stamp,
                updated_at=stamp,
            )
        )
        tx.wake("send", conversation.gateway)
        return True

    async def names(self, numbers: Collection[str]) -> dict[str, str]:
        """The names people gave those of ``numbers`` that have one."""
        if not numbers:
            return {}
        async with self.shared.read() as conn:
            rows = await conn.execute(
                sa.select(contacts.c.number, contacts.c.name).where(
                    contacts.c.number.in_(sorted(numbers)), contacts.c.name.is_not(None)
                )
            )
            return {row.number: row.name for row in rows}

    async def all(self) -> Sequence[Contact]:
        async with self.shared.read() as conn:
            rows = await conn.execute(sa.select(contacts).order_by(contacts.c.number))
            return [_contact(row) for row in rows]

    async def set_in(self, tx: Tx, number: str, **values: object) -> None:
        """Upsert columns of ``number``'s row (name, opted_out_at, blocked_at) in ``tx``."""
        stamped = {**values, "updated_at": now()}
        statement = self.shared.insert(contacts).values(number=number, **stamped)
        await tx.conn.execute(
            statement.on_conflict_do_update(index_elements=[contacts.c.number], set_=stamped)
        )

    async def set_name(self, number: str, name: str | None) -> None:
        async with self.shared.write() as tx:
            await self.set_in(tx, number, name=name)

    async def set_opted_out(self, number: str, opted_out: bool) -> None:
        async with self.shared.write() as tx:
            await self.set_in(tx, number, opted_out_at=now() if opted_out else None)

    async def set_blocked(self, number: str, blocked: bool) -> bool:
        """Block or unblock ``number``; False if it was so already. One conditional statement:
        of two /block at once (two instances on PostgreSQL) only one changes it."""
        stamp = now()
        async with self.shared.write() as tx:
            if not blocked:
                done = await tx.conn.execute(
                    contacts.update()
                    .where(contacts.c.number == number, contacts.c.blocked_at.is_not(None))
                    .values(blocked_at=None, updated_at=stamp)
                )
                return bool(done.rowcount)
            values = {"blocked_at": stamp, "updated_at": stamp}
            statement = self.shared.insert(contacts).values(number=number, **values)
            changed = await tx.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[contacts.c.number],
                    set_=values,
                    where=contacts.c.blocked_at.is_(None),
                ).returning(contacts.c.number)
            )
            return changed.first() is not None
