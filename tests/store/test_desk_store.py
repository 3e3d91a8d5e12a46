"""The thread commands' store on SQLite and PostgreSQL: names and the renames they queue, a
name over the gateway's alias in job titles, closing and reopening, the /status card."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from test_store import _async

from bridge.models import DeliveryUpdate, InboundSms, SendResult, Status
from bridge.store.records import Delivery, IngestItem, JobKind, Notice, OutboundRequest
from bridge.store.sql import SqlStore

NUMBER = "+15551234567"


@pytest.fixture
async def store(store_url: str) -> Any:
    opened = await SqlStore.open(_async(store_url))
    yield opened
    await opened.close()


async def received(store: SqlStore, provider_id: str, alias: str = "Taylor") -> None:
    sms = InboundSms("office", provider_id, NUMBER, "hi", datetime.now(UTC), alias=alias)
    await store.inbound.ingest([IngestItem(sms, (Delivery("support", ("hi",)),))])


async def drain(store: SqlStore) -> list[Any]:
    """Every pending job of the chat, marked done (as a worker would)."""
    jobs = await store.jobs.pending("support", 100)
    for job in jobs:
        await store.jobs.complete_post(job, (), None)
    return jobs


async def test_a_name_retitles_every_thread_and_wins_over_the_alias(store: SqlStore) -> None:
    await received(store, "g1")
    conversation = await store.threads.conversation("office", NUMBER)
    await store.threads.record(conversation.id, "support", "t1")
    await drain(store)

    assert await store.desk.set_name(NUMBER, "Alice Smith")
    assert not await store.desk.set_name(NUMBER, "Alice Smith")  # no change, no rename
    [rename] = await drain(store)
    assert (rename.kind, rename.alias, rename.number) == (JobKind.RENAME, "Alice Smith", NUMBER)
    # A new alias from the gateway renames nothing, and the posts still show the name.
    await received(store, "g2", alias="Someone Else")
    [post] = await drain(store)
    assert (post.kind, post.alias) == (JobKind.SMS, "Alice Smith")
    assert await store.contacts.names({NUMBER, "+15550000000"}) == {NUMBER: "Alice Smith"}

    assert await store.desk.set_names({NUMBER: None, "+15550000000": "Nobody Yet"}) == [
        NUMBER,
        "+15550000000",
    ]
    [rename] = await drain(store)  # only the number with a thread is retitled
    assert (rename.kind, rename.alias) == (JobKind.RENAME, "Someone Else")


async def test_close_queues_its_notice_first_and_an_sms_reopens(store: SqlStore) -> None:
    await received(store, "g1")
    conversation = await store.threads.conversation("office", NUMBER)
    assert await store.desk.set_closed("support", conversation.id, True) is None  # no thread
    await store.threads.record(conversation.id, "support", "t1")
    await drain(store)

    notice = Notice("support", "closed by Sam", thread_id="t1")
    key = ("notice:support", "m1")
    assert await store.desk.set_closed("support", conversation.id, True, [notice], key)
    assert not await store.desk.set_closed("support", conversation.id, True, [notice], key)
    assert [(j.kind, j.text) for j in await drain(store)] == [
        (JobKind.NOTICE, "closed by Sam"),
        (JobKind.CLOSE, None),
    ]
    assert (await store.desk.card(conversation, "support")).closed
    await received(store, "g2")
    assert not (await store.desk.card(conversation, "support")).closed
    await drain(store)
    await store.desk.set_closed("support", conversation.id, True)
    assert await store.desk.set_closed("support", conversation.id, False, [notice], ("n", "2"))
    assert [j.kind for j in await drain(store)] == [JobKind.CLOSE, JobKind.REOPEN, JobKind.NOTICE]


async def test_the_card_and_the_failed_sms_to_retry(store: SqlStore) -> None:
    await received(store, "g1")
    conversation = await store.threads.conversation("office", NUMBER)
    assert await store.desk.last_failed(conversation.id) is None
    ids = []
    for index, text in enumerate(["first", "second", "third"]):
        request = OutboundRequest("office", NUMBER, text, "support", f"m{index}", "Sam")
        outbox_id = await store.outbound.enqueue(request)
        assert outbox_id is not None
        ids.append(outbox_id)
        await store.outbound.record_sent(outbox_id, "office", SendResult(f"p{index}"))
    for index, reason in ((0, "Busy"), (1, "No coverage")):
        update = DeliveryUpdate("office", f"p{index}", Status.FAILED, "failed", reason)
        await store.outbound.apply_updates([update])
    failed = await store.desk.last_failed(conversation.id)
    assert failed is not None and (failed.id, failed.text) == (ids[1], "second")
    await store.contacts.set_blocked(NUMBER, True)
    card = await store.desk.card(conversation, "support")
    assert (card.failed, card.last_reason) == (2, "No coverage")
    assert card.last_in is not None and card.last_in.text == "hi"
    assert card.last_out is not None
    assert (card.last_out.text, card.last_out.status) == ("third", Status.QUEUED)
    assert (card.contact.blocked, card.contact.opted_out, card.closed) == (True, False, False)


async def test_closing_at_once_from_many_places_closes_and_announces_once(
    store: SqlStore,
) -> None:
    """Two people's /close at the same moment (two instances on PostgreSQL): one wins."""
    await received(store, "g1")
    conversation = await store.threads.conversation("office", NUMBER)
    await store.threads.record(conversation.id, "support", "t1")
    await drain(store)

    async def close(person: int) -> bool | None:
        notice = Notice("support", f"closed by {person}", thread_id="t1")
        return await store.desk.set_closed(
            "support", conversation.id, True, [notice], ("notice:support", f"m{person}")
        )

    done = await asyncio.gather(*(close(person) for person in range(8)))
    assert sorted(done) == [False] * 7 + [True]
    jobs = await drain(store)
    assert [job.kind for job in jobs] == [JobKind.NOTICE, JobKind.CLOSE]


async def test_blocking_at_once_from_many_places_blocks_once(store: SqlStore) -> None:
    """Two people's /block at the same moment (two instances on PostgreSQL): one announces."""
    for blocked in (True, False):
        done = await asyncio.gather(
            *(store.contacts.set_blocked(NUMBER, blocked) for _ in range(8))
        )
        assert sorted(done) == [False] * 7 + [True]
        assert (await store.contacts.get(NUMBER)).blocked is blocked
    assert not await store.contacts.set_blocked("+15559876543", False)  # never blocked


async def test_naming_at_once_from_many_places_renames_once(store: SqlStore) -> None:
    """The same /name from two people at once (two instances on PostgreSQL): one rename."""
    await received(store, "g1")
    conversation = await store.threads.conversation("office", NUMBER)
    await store.threads.record(conversation.id, "support", "t1")
    await drain(store)
    for name in ("Alice Smith", None):
        done = await asyncio.gather(*(store.desk.set_name(NUMBER, name) for _ in range(8)))
        assert sorted(done) == [False] * 7 + [True]
        assert [job.kind for job in await drain(store)] == [JobKind.RENAME]
        assert (await store.contacts.get(NUMBER)).name == name
    assert not await store.desk.set_name("+15559876543", None)  # never named
