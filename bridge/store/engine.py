"""Database engines for a store URL: SQLite tuned for one writer, PostgreSQL as is; migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bridge.errors import StoreInUse, StoreNotReady
from bridge.store.aio import AsyncConnection, AsyncEngine, create_async_engine
from bridge.store.schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x5353_4252  # "SSBR": serialises migrations of instances sharing a database
# The newest revision under migrations/versions; a test keeps the two in step.
SCHEMA_HEAD = "0005"
# Alembic's own bookkeeping table, as Alembic creates it (kept out of ``metadata``).
_alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
# (device, inode) of the SQLite files this process holds: see _hold_sqlite.
_HELD: set[tuple[int, int]] = set()


class Database:
    """Engines for one store URL.

    SQLite allows one writer at a time; writes are serialised here (an asyncio lock around one
    connection) so they queue in memory instead of failing with "database is locked", while
    reads run in parallel on other connections thanks to WAL. Every aiosqlite statement is a
    round trip to a thread, and the lock is held for all of them, so the writer keeps
    pysqlite's implicit BEGIN (no round trip of its own). One process holds a SQLite store
    (a second is refused: StoreInUse); several processes share a store on PostgreSQL.
    """

    def __init__(self, url: str, *, lock: bool = True, read_only: bool = False) -> None:
        """``lock=False`` is for commands run beside a bridge (``smsbridge status``, ``send``):
        they do not hold the SQLite file, so a running bridge keeps it, and they neither
        create nor migrate a store (``check_schema`` says when it is not ready). ``read_only``
        also refuses every write at the database (SQLite ``mode=ro``, PostgreSQL read-only
        transactions), for commands that only look."""
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.owner = lock and not read_only
        self._lock: asyncio.Lock | None = None
        self._held: tuple[int, tuple[int, int]] | None = None
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                raise ValueError("SQLite needs a file path, e.g. sqlite:///smsbridge.db")
            path = Path(database).expanduser()
            if self.owner:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._held = _hold_sqlite(path)
            elif not path.is_file():
                raise StoreNotReady(
                    f"there is no store at {os.path.abspath(path)} yet: "
                    "the bridge creates it when it first starts"
                )
            if read_only:
                # A URI filename: the connection cannot write, whatever a query tries.
                url = parsed.set(
                    database=f"file:{quote(str(path.absolute()))}",
                    query={"mode": "ro", "uri": "true"},
                ).render_as_string(hide_password=False)
            # No ROLLBACK when a connection goes back to the pool: reads never open a
            # transaction and writes always end theirs, and each ROLLBACK is another round trip.
            self.writer = create_async_engine(
                url, pool_size=1, max_overflow=0, pool_timeout=600, pool_reset_on_return=None
            )
            self.reader = create_async_engine(
                url, pool_size=4, max_overflow=4, pool_reset_on_return=None
            )
            _tune_sqlite(self.writer, transactional_ddl=False, read_only=read_only)
            _tune_sqlite(self.reader, transactional_ddl=False, read_only=read_only)
            self._lock = asyncio.Lock()
        else:
            # asyncpg passes server_settings on connect: every transaction is read-only.
            settings = {"default_transaction_read_only": "on"} if read_only else {}
            self.writer = self.reader = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                connect_args={"server_settings": settings} if settings else {},
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

    async def migrate(self, *, replay: bool = False) -> None:
        """Bring the schema to the newest revision (idempotent, all or nothing).

        ``replay`` runs every migration on an empty database too, instead of creating the
        declared schema at once (tests compare the two).
        """
        if not self.owner:
            raise RuntimeError("only the store's owner migrates it (lock=True, not read-only)")
        bring = _replay if replay else _bring_to_head
        if self.dialect != "sqlite":
            async with self.write() as conn:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
                await conn.run_sync(bring)
            return
        # pysqlite commits before DDL on its own; a separate engine that issues real BEGINs
        # keeps a migration in one transaction.
        engine = create_async_engine(self.writer.url, poolclass=NullPool)
        _tune_sqlite(engine, transactional_ddl=True)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(bring)
        finally:
            await engine.dispose()

    async def check_schema(self) -> None:
        """Raise StoreNotReady unless the schema is the one this code knows (for non-owners,
        which never migrate: the bridge does that when it starts)."""
        async with self.read() as conn:
            revisions = await conn.run_sync(_revisions)
        if revisions is None:
            raise StoreNotReady("the store has no smsbridge tables yet: start the bridge once")
        if revisions != [SCHEMA_HEAD]:
            found = ", ".join(revisions) or "none"
            raise StoreNotReady(
                f"the store's schema is at revision {found} and this smsbridge needs "
                f"{SCHEMA_HEAD}: start this version of the bridge once (it migrates the store)"
            )

    async def checkpoint(self) -> None:
        """Fold the SQLite WAL back into the database, off the write path.

        PASSIVE never waits for the writer, so a busy moment only postpones part of the work
        to the next call.
        """
        if self.dialect == "sqlite":
            async with self.read() as conn:
                await conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self._held is not None:
            # Only now: closing any descriptor of the file drops this process's POSIX locks on
            # it, SQLite's included, so not while a connection of ours may still be open.
            fd, key = self._held
            self._held = None
            _HELD.discard(key)
            os.close(fd)


def _hold_sqlite(path: Path) -> tuple[int, tuple[int, int]]:
    """Hold the SQLite file for the life of the store, or raise StoreInUse.

    Two processes writing one SQLite store would both post everything they read from it, so
    a second one is refused at once. An exclusive flock on the database file itself (no lock
    file to leave behind): on Linux it is independent of SQLite's own POSIX locks, and the
    kernel drops it with the process, so a kill -9 never blocks the next start. Another store
    of this process on the same file is refused before any descriptor is opened, because
    closing one (as a refusal must) would drop the first store's SQLite locks with it.
    """
    shown = os.path.abspath(path)
    with contextlib.suppress(FileNotFoundError):
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) in _HELD:
            raise StoreInUse(shown)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(shown) from None
    except BaseException:
        os.close(fd)
        raise
    stat = os.fstat(fd)
    key = (stat.st_dev, stat.st_ino)
    _HELD.add(key)
    return fd, key


def _revisions(connection: Connection) -> list[str] | None:
    """The stamped schema revisions; None when Alembic's table is missing."""
    if "alembic_version" not in sa.inspect(connection).get_table_names():
        return None
    rows = connection.execute(sa.select(_alembic_version.c.version_num)).scalars().all()
    return [str(row) for row in rows]


def _bring_to_head(connection: Connection) -> None:
    """Migrate only when the schema is behind; build a new database in one step.

    Alembic, with Mako (and Pygments, where installed) behind it, costs 5 to 8 MB of resident
    memory for the life of the process (measured), so a start where the schema is already at
    head, or a new database, does not import it. A new database gets the declared schema
    (``metadata``, which the migrations must reproduce exactly: tests compare them) stamped
    with the head revision, as Alembic's cookbook does.
    """
    tables = set(sa.inspect(connection).get_table_names())
    if "alembic_version" in tables:
        current = connection.execute(sa.select(_alembic_version.c.version_num)).scalars().all()
        if current == [SCHEMA_HEAD]:
            return
    elif not tables & set(metadata.tables):
        metadata.create_all(connection)
        _alembic_version.create(connection)
        connection.execute(_alembic_version.insert().values(version_num=SCHEMA_HEAD))
        return
    _replay(connection)


def _replay(connection: Connection) -> None:
    from alembic import command  # only here: see _bring_to_head

    command.upgrade(alembic_config(connection), "head")


def alembic_config(connection: Connection) -> AlembicConfig:
    """Alembic's configuration for our migrations, run on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _tune_sqlite(engine: AsyncEngine, *, transactional_ddl: bool, read_only: bool = False) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers never block the writer; NORMAL: a commit survives a killed process
        # (only an OS crash could lose the last commits), at a fraction of FULL's fsyncs.
        if transactional_ddl:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        if not read_only:  # the owner made it WAL; a read-only connection may not set it
            cursor.execute("PRAGMA journal_mode=WAL")
        for pragma in (
            "synchronous=NORMAL",
            "busy_timeout=10000",
            # No checkpoint inside a commit (it fsyncs while the write lock is held, a
            # measured latency spike); checkpoint() runs them from the side instead.
            "wal_autocheckpoint=0",
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if transactional_ddl:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
