"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridge.store.engine import Database
from bridge.store.schema import metadata


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_declared_one(store_url: str) -> None:
    url = store_url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    db = Database(url)
    try:
        await db.migrate()
        async with db.read() as conn:
            differences = await conn.run_sync(_diff)
    finally:
        await db.dispose()
    assert differences == []
