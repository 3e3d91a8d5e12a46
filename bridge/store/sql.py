"""The store: SQLite by default, PostgreSQL for shared deployments; one class, all operations."""

from __future__ import annotations

from bridge.store.base import Wake
from bridge.store.engine import Database
from bridge.store.jobs import JobOps


class SqlStore(JobOps):
    """Every durable operation of the bridge; each public method is one transaction."""

    @classmethod
    async def open(cls, url: str, wake: Wake | None = None) -> SqlStore:
        """Connect and migrate the schema to the newest revision."""
        db = Database(url)
        try:
            await db.migrate()
        except BaseException:
            await db.dispose()
            raise
        return cls(db, wake)

    async def close(self) -> None:
        await self.db.dispose()
