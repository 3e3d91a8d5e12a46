"""Store queries for leases: which instance of a deployment owns each singleton duty.

Times come from the database's clock, never an instance's: instances whose clocks disagree
still agree on when a lease ran out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bridge.store.base import Shared
from bridge.store.schema import leases


@dataclass(frozen=True)
class Holder:
    """Who owns a duty now, and for how many more seconds unless renewed."""

    name: str
    holder: str
    left: float


class Leases:
    """Acquire, renew and release leases; one statement each, whatever the number of duties."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def _db_now(self) -> Any:
        if self.shared.db.dialect == "sqlite":
            return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Float)
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)

    async def claim(self, holder: str, names: Collection[str], ttl: float) -> set[str]:
        """Renew what ``holder`` owns and take what nobody owns any more; the names it now owns.

        One upsert: a row is taken only if it is ours already or ran out, which the database
        decides row by row under its lock, so two instances claiming at once never both win.
        Sorted, so that two claims lock rows in the same order and cannot deadlock.
        """
        if not names:
            return set()
        db_now = self._db_now()
        statement = self.shared.insert(leases).values(
            [
                {"name": name, "holder": holder, "expires_at": db_now + ttl, "acquired_at": db_now}
                for name in sorted(names)
            ]
        )
        taken = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[leases.c.name],
            set_={
                "holder": taken.holder,
                "expires_at": taken.expires_at,
                "acquired_at": sa.case(
                    (leases.c.holder == taken.holder, leases.c.acquired_at),
                    else_=taken.acquired_at,
                ),
            },
            where=(leases.c.holder == taken.holder) | (leases.c.expires_at < db_now),
        ).returning(leases.c.name)
        async with self.shared.write() as tx:
            return {str(name) for name in (await tx.conn.execute(statement)).scalars()}

    async def release(self, holder: str, names: Collection[str]) -> None:
        """Give up duties at once (a clean stop): another instance need not wait them out."""
        if not names:
            return
        async with self.shared.write() as tx:
            await tx.conn.execute(
                leases.delete().where(leases.c.holder == holder, leases.c.name.in_(list(names)))
            )

    async def forget_all(self) -> None:
        """Drop every lease: only for a store that one process alone can open (SQLite's lock
        proves that whoever held them is gone), so a restart after a crash waits for nothing."""
        async with self.shared.write() as tx:
            await tx.conn.execute(leases.delete())

    async def holders(self) -> list[Holder]:
        async with self.shared.read() as conn:
            rows = await conn.execute(
                sa.select(
                    leases.c.name, leases.c.holder, (leases.c.expires_at - self._db_now())
                ).order_by(leases.c.name)
            )
            return [Holder(str(row[0]), str(row[1]), float(row[2])) for row in rows]
