"""The Alembic migrations build exactly the schema the code declares, on both databases.

A new database skips them (``metadata.create_all`` stamped at head) and a start where the
schema is at head does not even import Alembic; these tests keep both shortcuts honest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bridge.store.engine import SCHEMA_HEAD, Database, alembic_config
from bridge.store.schema import metadata


def _async(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


def _revision(connection: Any) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _schema(connection: Any) -> dict[str, Any]:
    """Everything the database says about our tables, in a comparable form."""
    inspector = sa.inspect(connection)
    found: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        found[table] = {
            # Migrations add columns at the end; nothing reads columns by position.
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ),
            "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign keys": sorted(
                (
                    f["name"] or "",
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                )
                for f in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return found


def _drop_everything(connection: Any) -> None:
    metadata.drop_all(connection)
    connection.execute(sa.text("DROP TABLE alembic_version"))


async def test_migrated_schema_matches_the_declared_one(store_url: str) -> None:
    db = Database(_async(store_url))
    try:
        await db.migrate(replay=True)
        async with db.read() as conn:
            differences = await conn.run_sync(_diff)
            revision = await conn.run_sync(_revision)
    finally:
        await db.dispose()
    assert differences == []
    assert revision == SCHEMA_HEAD


async def test_a_new_database_gets_the_schema_the_migrations_build(store_url: str) -> None:
    db = Database(_async(store_url))
    try:
        await db.migrate(replay=True)
        async with db.read() as conn:
            replayed = await conn.run_sync(_schema)
        async with db.write() as conn:
            await conn.run_sync(_drop_everything)
        async with db.read() as conn:
            assert await conn.run_sync(lambda c: sa.inspect(c).get_table_names()) == []
        await db.migrate()
        async with db.read() as conn:
            created = await conn.run_sync(_schema)
            revision = await conn.run_sync(_revision)
    finally:
        await db.dispose()
    assert set(created) == set(metadata.tables) | {"alembic_version"}
    assert created == replayed
    assert revision == SCHEMA_HEAD


async def test_an_older_schema_is_migrated_to_head(store_url: str) -> None:
    db = Database(_async(store_url))
    try:
        async with db.write() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
        async with db.read() as conn:
            assert await conn.run_sync(_revision) == "0001"
            assert "attachments" not in await conn.run_sync(
                lambda c: sa.inspect(c).get_table_names()
            )
        await db.migrate()
        async with db.read() as conn:
            differences = await conn.run_sync(_diff)
            revision = await conn.run_sync(_revision)
    finally:
        await db.dispose()
    assert differences == []
    assert revision == SCHEMA_HEAD


def test_schema_head_is_the_newest_migration() -> None:
    with sa.create_engine("sqlite://").connect() as conn:
        scripts = ScriptDirectory.from_config(alembic_config(conn))
    assert scripts.get_heads() == [SCHEMA_HEAD]


def test_a_sqlite_store_loads_neither_alembic_the_orm_nor_the_postgresql_dialect(
    tmp_path: Path,
) -> None:
    # Both cost resident memory for the life of the process (bench.memory); a fresh process
    # is the only honest place to look, since this one has imported them already.
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from bridge.store.sql import SqlStore

        async def main():
            for _ in range(2):  # a new database, then a start where it is at head
                store = await SqlStore.open("sqlite+aiosqlite:///{tmp_path / "store.db"}")
                await store.jobs.head("support")
                await store.close()

        asyncio.run(main())
        heavy = ("alembic", "mako", "sqlalchemy.dialects.postgresql", "sqlalchemy.orm")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
        # The deferred package is still whole for anyone who asks for the rest of it.
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
        assert AsyncSession.__module__ == "sqlalchemy.ext.asyncio.session"
        from bridge.store.aio import create_async_engine as ours
        assert ours is create_async_engine
        """
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
