"""Database engines for a store URL: SQLite tuned for one writer, PostgreSQL as is; migrations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x5353_4252  # "SSBR": serialises migrations of instances sharing a database


class Database:
    """Engines for one store URL.

    SQLite allows one writer at a time; writes are serialised here (an asyncio lock around one
    connection that begins IMMEDIATE) so they queue in memory instead of failing with
    "database is locked", while reads run in parallel on other connections thanks to WAL.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._lock: asyncio.Lock | None = None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ValueError("SQLite needs a file path, e.g. sqlite:///smsbridge.db")
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=600)
            self.reader = create_async_engine(url, pool_size=4, max_overflow=4)
            _tune_sqlite(self.writer, immediate=True)
            _tune_sqlite(self.reader, immediate=False)
            self._lock = asyncio.Lock()
        else:
            self.writer = self.reader = create_async_engine(
                url, pool_size=10, max_overflow=10, pool_pre_ping=True
            )

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, committed on exit."""
        if self._lock is None:
            async with self.writer.begin() as conn:
                yield conn
            return
        async with self._lock, self.writer.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        async with self.write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
            await conn.run_sync(_upgrade)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _tune_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers never block the writer; NORMAL: a commit survives a killed process
        # (only an OS crash could lose the last commits), at a fraction of FULL's fsyncs.
        if immediate:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=10000",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if immediate:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Take the write lock up front: a deferred transaction that upgrades later can fail
            # with SQLITE_BUSY immediately when another process (`smsbridge send`) writes.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
