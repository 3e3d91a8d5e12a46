"""Opt-out and blocks in the store, on SQLite and PostgreSQL: applied with the SMS, once; the
sender's state read with the SMS to send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.models import InboundSms
from bridge.store.records import Delivery, IngestItem, JobKind, OptChange, OutboundRequest
from bridge.store.sql import SqlStore

NUMBER = "+15551234567"
STOP = OptChange(True, "🚫 opted out", "You will get no more texts.")
START = OptChange(False, "✅ opted back in")


def item(provider_id: str, text: str, opt: OptChange | None = None) -> IngestItem:
    sms = InboundSms("office", provider_id, NUMBER, text, datetime.now(UTC))
    return IngestItem(sms, (Delivery("support", (text,)), Delivery("team", (text,))), None, opt)


@pytest.fixture
async def store(store_url: str) -> Any:
    url = store_url.replace("sqlite://", "sqlite+aiosqlite://")
    opened = await SqlStore.open(url.replace("postgresql://", "postgresql+asyncpg://"))
    yield opened
    await opened.close()


async def jobs(store: SqlStore, chat: str) -> list[tuple[JobKind, str | None]]:
    return [(job.kind, job.text) for job in await store.jobs.pending(chat, 100)]


async def test_a_stop_opts_out_once_with_one_confirmation_and_a_notice_per_chat(
    store: SqlStore,
) -> None:
    [stored] = await store.inbound.ingest([item("s1", "STOP", STOP)])
    assert stored is not None and not stored.blocked
    assert (await store.contacts.get(NUMBER)).opted_out
    for chat in ("support", "team"):
        assert await jobs(store, chat) == [(JobKind.SMS, "STOP"), (JobKind.NOTICE, "🚫 opted out")]
    confirmation = await store.outbound.next_pending("office")
    assert confirmation is not None
    assert (confirmation.purpose, confirmation.sms.text) == ("confirmation", STOP.confirmation)
    assert confirmation.opted_out and not confirmation.blocked
    # Redelivered: nothing changes twice, even after a START in between.
    await store.inbound.ingest([item("s2", "start", START)])
    assert not (await store.contacts.get(NUMBER)).opted_out
    assert await store.inbound.ingest([item("s1", "STOP", STOP)]) == [None]
    assert not (await store.contacts.get(NUMBER)).opted_out
    await store.outbound.fail(confirmation.sms.id, "done with it", None)
    assert await store.outbound.next_pending("office") is None


async def test_a_blocked_sender_is_stored_not_posted_and_its_replies_carry_the_block(
    store: SqlStore,
) -> None:
    await store.contacts.set_blocked(NUMBER, True)
    first, second = await store.inbound.ingest([item("b1", "hello"), item("b2", "STOP", STOP)])
    assert first is not None and first.blocked and second is not None and second.blocked
    assert await store.inbound.known("office", ["b1", "b2"]) == {"b1", "b2"}
    assert await jobs(store, "support") == [] and await jobs(store, "team") == []
    contact = await store.contacts.get(NUMBER)
    assert contact.blocked and contact.opted_out
    await store.outbound.enqueue(OutboundRequest("office", NUMBER, "hi", "support", "m1", "Sam"))
    pending = await store.outbound.next_pending("office")
    assert pending is not None and pending.purpose == "confirmation"  # queued first
    await store.outbound.fail(pending.sms.id, "done with it", None)
    pending = await store.outbound.next_pending("office")
    assert pending is not None
    assert (pending.purpose, pending.blocked, pending.opted_out) == ("reply", True, True)
