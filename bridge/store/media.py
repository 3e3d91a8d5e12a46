"""Store queries for files leaving as MMS: kept with their outbox row, served by token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from bridge.store.base import Shared, Tx, now
from bridge.store.schema import outbox_media

MEDIA_TTL = 24 * 3600.0  # seconds a file stays fetchable at /media/<token> after it was stored


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file downloaded from a chat, to be stored with the SMS it goes out with."""

    content_type: str
    data: bytes
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A stored file of an outbox row, as the SMS worker needs it (without the bytes)."""

    token: str
    content_type: str
    name: str | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class ServedMedia:
    """A file as GET /media/<token> serves it."""

    content_type: str
    name: str | None
    data: bytes


async def add_media(tx: Tx, outbox_id: int, files: tuple[MediaFile, ...], stamp: float) -> None:
    """In the outbox row's own transaction: the SMS and its files exist together or not at all."""
    if not files:
        return
    await tx.conn.execute(
        outbox_media.insert(),
        [
            {
                "outbox_id": outbox_id,
                "position": position,
                # 256 random bits: the URL is the only thing guarding the file (Twilio fetches
                # it without credentials).
                "token": secrets.token_urlsafe(32),
                "content_type": file.content_type[:255],
                "name": file.name[:255] if file.name else None,
                "data": file.data,
                "expires_at": stamp + MEDIA_TTL,
                "created_at": stamp,
            }
            for position, file in enumerate(files)
        ],
    )


class Media:
    """The files of outbound MMS: listed for the sender, served by token."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def of_outbox(self, outbox_id: int) -> list[StoredMedia]:
        async with self.shared.read() as conn:
            rows = await conn.execute(
                sa.select(
                    outbox_media.c.token,
                    outbox_media.c.content_type,
                    outbox_media.c.name,
                    outbox_media.c.expires_at,
                )
                .where(outbox_media.c.outbox_id == outbox_id)
                .order_by(outbox_media.c.position)
            )
            return [StoredMedia(r.token, r.content_type, r.name, float(r.expires_at)) for r in rows]

    async def files_of(self, outbox_id: int) -> list[MediaFile] | None:
        """The files an SMS went with, to send them again (/retry); None when any of them has
        expired (its bytes may be gone), since the SMS must not go without them."""
        async with self.shared.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(outbox_media)
                    .where(outbox_media.c.outbox_id == outbox_id)
                    .order_by(outbox_media.c.position)
                )
            ).all()
        if any(row.expires_at <= now() for row in rows):
            return None
        return [MediaFile(row.content_type, bytes(row.data), row.name) for row in rows]

    async def by_token(self, token: str) -> ServedMedia | None:
        """The file behind ``token`` while it has not expired; None otherwise."""
        async with self.shared.read() as conn:
            row = (
                await conn.execute(
                    sa.select(outbox_media.c.content_type, outbox_media.c.name, outbox_media.c.data)
                    .where(outbox_media.c.token == token, outbox_media.c.expires_at > now())
                    .limit(1)
                )
            ).first()
        return None if row is None else ServedMedia(row.content_type, row.name, bytes(row.data))


def purge_expired() -> sa.Update:
    """Housekeeping: expired files' bytes are dropped; the rows stay as the SMS's record."""
    return (
        outbox_media.update()
        .where(outbox_media.c.expires_at <= now(), sa.func.length(outbox_media.c.data) > 0)
        .values(data=b"")
    )
