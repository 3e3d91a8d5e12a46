"""Store queries for where each poll has got to, and for event ids already seen."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from bridge.store.base import Shared, Tx, now
from bridge.store.schema import cursors, seen_events


class Cursors:
    """Poll cursors, and the ids of delivered events (so a redelivery is recognised)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def get(self, name: str) -> str | None:
        async with self.shared.read() as conn:
            value = (
                await conn.execute(sa.select(cursors.c.value).where(cursors.c.name == name))
            ).scalar()
        return str(value) if value is not None else None

    async def set_in(self, tx: Tx, name: str, value: str) -> None:
        updated = await tx.conn.execute(
            cursors.update().where(cursors.c.name == name).values(value=value, updated_at=now())
        )
        if updated.rowcount == 0:
            await tx.conn.execute(cursors.insert().values(name=name, value=value, updated_at=now()))

    async def mark_seen(self, tx: Tx, source: str, key: str) -> bool:
        """Record an event id; False when it was seen before."""
        result = await tx.conn.execute(
            self.shared.insert_ignore(seen_events)
            .values(source=source[:128], key=key[:255], created_at=now())
            .returning(seen_events.c.key)
        )
        return result.first() is not None

    async def mark_seen_many(self, tx: Tx, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Record event ids; returns those not seen before."""
        stamp = now()
        rows = (
            await tx.conn.execute(
                self.shared.insert_ignore(seen_events).returning(
                    seen_events.c.source, seen_events.c.key
                ),
                [{"source": s[:128], "key": k[:255], "created_at": stamp} for s, k in keys],
            )
        ).all()
        return {(row.source, row.key) for row in rows}
