"""Files of outbound MMS in the store, on SQLite and PostgreSQL: stored with their SMS in one
transaction, served by token until they expire, their bytes purged after."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bridge.store.media import MEDIA_TTL, MediaFile
from bridge.store.records import OutboundRequest
from bridge.store.schema import outbox_media
from bridge.store.sql import SqlStore

NUMBER = "+15551234567"
FILES = (
    MediaFile("image/png", b"\x89PNG first", "a.png"),
    MediaFile("application/pdf", b"%PDF second", None),
)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    url = store_url.replace("sqlite://", "sqlite+aiosqlite://")
    opened = await SqlStore.open(url.replace("postgresql://", "postgresql+asyncpg://"))
    yield opened
    await opened.close()


def request(message_id: str, media: tuple[MediaFile, ...] = FILES) -> OutboundRequest:
    return OutboundRequest("tw", NUMBER, "", "support", message_id, "Sam", media=media)


async def test_files_are_stored_with_their_sms_once_and_served_by_token(store: SqlStore) -> None:
    before = time.time()
    outbox_id = await store.outbound.enqueue(request("1"))
    assert outbox_id is not None
    assert await store.outbound.enqueue(request("1")) is None  # a redelivery adds no files
    stored = await store.media.of_outbox(outbox_id)
    assert [(m.content_type, m.name) for m in stored] == [
        ("image/png", "a.png"),
        ("application/pdf", None),
    ]
    assert len({m.token for m in stored}) == 2 and all(len(m.token) >= 43 for m in stored)
    assert all(before + MEDIA_TTL <= m.expires_at <= time.time() + MEDIA_TTL for m in stored)
    served = await store.media.by_token(stored[1].token)
    assert served is not None and (served.content_type, served.data) == (
        "application/pdf",
        b"%PDF second",
    )
    assert await store.media.by_token("x" * 43) is None
    assert await store.media.of_outbox(outbox_id + 1) == []


async def test_expired_files_are_refused_and_their_bytes_purged(store: SqlStore) -> None:
    old = await store.outbound.enqueue(request("1"))
    fresh = await store.outbound.enqueue(request("2", FILES[:1]))
    assert old is not None and fresh is not None
    async with store.shared.write() as tx:
        await tx.conn.execute(
            outbox_media.update()
            .where(outbox_media.c.outbox_id == old)
            .values(expires_at=time.time() - 1)
        )
    [gone, _] = await store.media.of_outbox(old)
    [kept] = await store.media.of_outbox(fresh)
    assert await store.media.by_token(gone.token) is None
    await store.purge(7 * 86400.0)
    async with store.shared.read() as conn:
        rows = (await conn.execute(sa.select(outbox_media.c.outbox_id, outbox_media.c.data))).all()
    assert sorted((row.outbox_id, bytes(row.data)) for row in rows) == [
        (old, b""),
        (old, b""),
        (fresh, b"\x89PNG first"),
    ]
    served = await store.media.by_token(kept.token)
    assert served is not None and served.data == b"\x89PNG first"
