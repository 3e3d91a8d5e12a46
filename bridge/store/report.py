"""Read-only store queries for operators: queues, recent errors, every message of a number.

Used by ``smsbridge status`` and ``smsbridge conversations``, which open the store beside a
running bridge (``Database(lock=False, read_only=True)``); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bridge.models import Status
from bridge.store.base import Shared, now
from bridge.store.records import JobKind
from bridge.store.schema import chat_jobs, chat_messages, conversations, inbound, outbox

# The queues as the metrics name them (OPS.md): status jobs are chat jobs of kind "status",
# chat posts every other chat job, outbound SMS the outbox rows not yet accepted by a gateway.
CHAT_POSTS = "chat_posts"
STATUS_JOBS = "status_jobs"
OUTBOUND_SMS = "outbound_sms"


@dataclass(frozen=True)
class Waiting:
    """What waits in one queue of one chat or gateway (only queues with something in them)."""

    queue: str  # chat_posts | outbound_sms | status_jobs (bridge.metrics.QUEUES)
    name: str  # the chat or gateway
    depth: int
    oldest: float  # created_at of the oldest item (unix time)


@dataclass(frozen=True)
class Queue:
    queue: str
    name: str  # the chat or the gateway
    depth: int
    oldest: float | None  # seconds since the oldest item was queued; None when empty


@dataclass(frozen=True)
class Problem:
    """A chat job or an outbound SMS that failed, or is being retried after an error."""

    at: float
    what: str  # "chat job" | "sms"
    name: str  # the chat or the gateway
    id: int
    state: str  # "failed" | "retrying"
    attempts: int
    error: str
    kind: str = ""  # the chat job's kind


@dataclass(frozen=True)
class MessageFilter:
    number: str | None = None
    chat: str | None = None
    gateway: str | None = None
    since: float | None = None


@dataclass
class Message:
    """One SMS in or out, as ``smsbridge conversations export`` writes it."""

    direction: str  # "in" | "out"
    id: int
    time: float  # received (in) or queued (out)
    gateway: str
    number: str
    alias: str | None
    text: str
    status: str  # "received" for inbound SMS, else the outbox status
    reason: str | None
    author: str | None
    provider_id: str | None
    stored_at: float
    updated_at: float
    chats: list[str] = field(default_factory=list)  # where it is shown, or queued to be


class Report:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    async def waiting(self) -> list[Waiting]:
        """Depth and oldest item of every non-empty queue: one query per table."""
        async with self.shared.read() as conn:
            jobs = (
                await conn.execute(
                    sa.select(
                        chat_jobs.c.chat,
                        chat_jobs.c.kind,
                        sa.func.count(),
                        sa.func.min(chat_jobs.c.created_at),
                    )
                    .where(chat_jobs.c.state == "pending")
                    .group_by(chat_jobs.c.chat, chat_jobs.c.kind)
                )
            ).all()
            sms = (
                await conn.execute(
                    sa.select(outbox.c.gateway, sa.func.count(), sa.func.min(outbox.c.created_at))
                    .where(outbox.c.status == Status.PENDING.value)
                    .group_by(outbox.c.gateway)
                )
            ).all()
        # Kinds folded here, not in SQL: a comparison in GROUP BY is a bound parameter per use,
        # which PostgreSQL does not match with the same comparison in SELECT.
        found: dict[tuple[str, str], tuple[int, float]] = {}
        for chat, kind, count, oldest in jobs:
            key = (STATUS_JOBS if kind == JobKind.STATUS.value else CHAT_POSTS, str(chat))
            depth, first = found.get(key, (0, oldest))
            found[key] = (depth + int(count), min(first, oldest))
        waiting = [Waiting(q, name, depth, first) for (q, name), (depth, first) in found.items()]
        waiting += [Waiting(OUTBOUND_SMS, str(row[0]), int(row[1]), row[2]) for row in sms]
        return waiting

    async def queues(self, chats: Sequence[str], gateways: Sequence[str]) -> list[Queue]:
        """Every queue of the named chats and gateways (empty ones too), and any other
        non-empty one (a chat or gateway no longer in the config)."""
        found = {(w.queue, w.name): (w.depth, w.oldest) for w in await self.waiting()}
        keys = [(CHAT_POSTS, c) for c in chats] + [(OUTBOUND_SMS, g) for g in gateways]
        keys += [(STATUS_JOBS, c) for c in chats]
        keys += sorted(k for k in found if k not in keys)
        stamp = now()
        result = []
        for queue, name in keys:
            count, oldest = found.get((queue, name), (0, None))
            age = None if oldest is None else max(0.0, stamp - float(oldest))
            result.append(Queue(queue, name, int(count), age))
        return result

    async def problems(self, limit: int = 10) -> list[Problem]:
        """The latest failures and retries of chat jobs and outbound SMS, newest first."""
        async with self.shared.read() as conn:
            jobs = await conn.execute(
                sa.select(chat_jobs)
                .where(
                    (chat_jobs.c.state == "failed")
                    | ((chat_jobs.c.state == "pending") & chat_jobs.c.last_error.is_not(None))
                )
                .order_by(chat_jobs.c.id.desc())
                .limit(limit)
            )
            found = [
                Problem(
                    float(row.done_at or row.created_at),
                    "chat job",
                    row.chat,
                    row.id,
                    "failed" if row.state == "failed" else "retrying",
                    row.attempts,
                    row.last_error or "",
                    row.kind,
                )
                for row in jobs
            ]
            sms = await conn.execute(
                sa.select(outbox)
                .where(
                    (outbox.c.status == Status.FAILED.value)
                    | ((outbox.c.status == Status.PENDING.value) & outbox.c.reason.is_not(None))
                )
                .order_by(outbox.c.updated_at.desc())
                .limit(limit)
            )
            found += [
                Problem(
                    float(row.updated_at),
                    "sms",
                    row.gateway,
                    row.id,
                    "failed" if row.status == Status.FAILED.value else "retrying",
                    row.attempts,
                    row.reason or "",
                )
                for row in sms
            ]
        return sorted(found, key=lambda p: p.at, reverse=True)[:limit]

    async def messages(self, where: MessageFilter) -> list[Message]:
        """Every SMS in and out that ``where`` lets through, oldest first."""
        received = sa.select(
            inbound.c.id,
            inbound.c.received_at,
            inbound.c.created_at,
            inbound.c.gateway,
            inbound.c.text,
            inbound.c.provider_id,
            conversations.c.number,
            conversations.c.alias,
        ).join(conversations, conversations.c.id == inbound.c.conversation_id)
        sent = sa.select(outbox, conversations.c.alias).join(
            conversations, conversations.c.id == outbox.c.conversation_id
        )
        if where.number is not None:
            received = received.where(conversations.c.number == where.number)
            sent = sent.where(outbox.c.number == where.number)
        if where.gateway is not None:
            received = received.where(inbound.c.gateway == where.gateway)
            sent = sent.where(outbox.c.gateway == where.gateway)
        if where.since is not None:
            received = received.where(inbound.c.received_at >= where.since)
            sent = sent.where(outbox.c.created_at >= where.since)
        if where.chat is not None:
            received = received.where(_shown_in(where.chat, inbound.c.id, "inbound_id"))
            sent = sent.where(
                (outbox.c.origin_chat == where.chat)
                | _shown_in(where.chat, outbox.c.id, "outbox_id")
            )
        async with self.shared.read() as conn:
            ins = (await conn.execute(received)).all()
            outs = (await conn.execute(sent)).all()
            in_chats = await _chats_of(conn, "inbound_id", received)
            out_chats = await _chats_of(conn, "outbox_id", sent)
        messages = [
            Message(
                "in",
                r.id,
                float(r.received_at),
                r.gateway,
                r.number,
                r.alias,
                r.text,
                "received",
                None,
                None,
                r.provider_id,
                float(r.created_at),
                float(r.created_at),
                sorted(in_chats.get(r.id, ())),
            )
            for r in ins
        ]
        messages += [
            Message(
                "out",
                r.id,
                float(r.created_at),
                r.gateway,
                r.number,
                r.alias,
                r.text,
                r.status,
                r.reason,
                r.author,
                r.provider_id,
                float(r.created_at),
                float(r.updated_at),
                sorted(out_chats.get(r.id, ())),
            )
            for r in outs
        ]
        return sorted(messages, key=lambda m: (m.time, m.direction, m.id))


def _shown_in(chat: str, message_id: Any, column: str) -> Any:
    """The message is posted in ``chat``, or a job will post it there."""
    return sa.exists().where(
        chat_messages.c.chat == chat, chat_messages.c[column] == message_id
    ) | sa.exists().where(chat_jobs.c.chat == chat, chat_jobs.c[column] == message_id)


async def _chats_of(conn: Any, column: str, selected: sa.Select[Any]) -> dict[int, set[str]]:
    """The chats each selected message is shown in (or queued for), by message id."""
    ids = selected.with_only_columns(selected.selected_columns["id"])
    found: dict[int, set[str]] = {}
    for table in (chat_messages, chat_jobs):
        rows = await conn.execute(
            sa.select(table.c[column], table.c.chat).where(table.c[column].in_(ids)).distinct()
        )
        for message_id, chat in rows:
            found.setdefault(int(message_id), set()).add(str(chat))
    return found
