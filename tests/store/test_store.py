"""The store on SQLite and on real PostgreSQL: unique keys, atomicity, status rules, queues."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.models import Attachment, DeliveryUpdate, InboundSms, SendResult, Status
from bridge.store.records import Delivery, IngestItem, JobKind, Notice, OutboundRequest
from bridge.store.sql import SqlStore

NUMBER = "+15551234567"


def sms(provider_id: str, text: str = "hello", number: str = NUMBER) -> InboundSms:
    return InboundSms("office", provider_id, number, text, datetime.now(UTC), alias="Taylor")


def item(provider_id: str, event: tuple[str, str] | None = None) -> IngestItem:
    return IngestItem(sms(provider_id), (Delivery("support", ("hello",)),), event)


@pytest.fixture
async def store(store_url: str) -> Any:
    woken: list[tuple[str, str]] = []
    opened = await SqlStore.open(_async(store_url), lambda kind, name: woken.append((kind, name)))
    opened.woken = woken  # type: ignore[attr-defined]
    yield opened
    await opened.close()


def _async(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


async def test_migrations_are_idempotent(store_url: str) -> None:
    first = await SqlStore.open(_async(store_url))
    try:
        assert (await first.inbound.ingest([item("g1")]))[0] is not None
    finally:
        await first.close()
    second = await SqlStore.open(_async(store_url))  # migrates again, over the data
    try:
        assert await second.inbound.ingest([item("g1")]) == [None]  # the first SMS is still there
        job = await second.jobs.head("support")
        assert job is not None and job.text == "hello"  # and so is the work it left
    finally:
        await second.close()


async def test_ingest_drops_duplicates_by_provider_id_and_event(store: SqlStore) -> None:
    first = await store.inbound.ingest([item("g1", ("v2", "e1"))])
    again = await store.inbound.ingest([item("g1"), item("g2", ("v2", "e1"))])
    assert first[0] is not None
    assert again == [None, None]  # same guid; same envelope id
    job = await store.jobs.head("support")
    assert job is not None and job.kind is JobKind.SMS and job.text == "hello"
    assert ("chat", "support") in store.woken  # type: ignore[attr-defined]


async def test_known_inbound_names_the_ids_this_gateway_already_has(store: SqlStore) -> None:
    ids = [f"g{i}" for i in range(1200)]  # more than one bounded IN list
    await store.inbound.ingest([item(i) for i in ids[::2]])
    other = dataclasses.replace(sms("g1"), gateway="other")
    await store.inbound.ingest([IngestItem(other, (Delivery("support", ("hello",)),))])
    known = await store.inbound.known("office", [*ids, "never"])
    assert known == set(ids[::2])  # "g1" is another gateway's
    assert await store.inbound.known("office", []) == set()


async def test_cursor_commits_with_the_sms_or_not_at_all(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:

    async def broken(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store.cursors, "set_in", broken)
    with pytest.raises(RuntimeError):
        await store.inbound.ingest([item("g1"), item("g2")], cursor=("poll:office", "100"))
    assert await store.cursors.get("poll:office") is None
    assert await store.jobs.head("support") is None  # the SMS rolled back with it
    monkeypatch.undo()
    assert await store.inbound.ingest([item("g1")], cursor=("poll:office", "100")) != [None]
    assert await store.cursors.get("poll:office") == "100"


async def test_duplicates_inside_one_batch(store: SqlStore) -> None:
    results = await store.inbound.ingest(
        [item("g1"), item("g1"), item("g2", ("v2", "e")), item("g3", ("v2", "e"))]
    )
    assert results[0] is not None and results[1] is None
    assert results[2] is not None and results[3] is None
    assert (await store.backlog())["chat_jobs"] == {"support": 2}


async def test_conversation_keeps_alias_and_maps_threads_and_messages(store: SqlStore) -> None:
    await store.inbound.ingest([item("g1")])
    conversation = await store.threads.conversation("office", NUMBER)
    assert conversation.alias == "Taylor"
    await store.threads.record(conversation.id, "support", "77")
    await store.threads.record(conversation.id, "support", "78")  # recreated topic replaces the old
    assert await store.threads.find(conversation.id, "support") == "78"
    found = await store.threads.conversation_for_thread("support", "78")
    assert found is not None and found.number == NUMBER
    assert await store.threads.conversation_for_thread("support", "77") is None
    job = await store.jobs.head("support")
    assert job is not None
    await store.jobs.complete_post(job, ["501"], "78")
    mapped = await store.threads.conversation_for_message("support", "501")
    assert mapped is not None and mapped.id == conversation.id
    assert await store.jobs.head("support") is None


async def test_a_new_alias_queues_a_rename_of_each_thread_before_its_sms(store: SqlStore) -> None:
    await store.inbound.ingest([item("g1")])
    conversation = await store.threads.conversation("office", NUMBER)
    job = await store.jobs.head("support")
    assert job is not None
    await store.jobs.complete_post(job, ["501"], "78", new_thread=True)
    renamed = IngestItem(dataclasses.replace(sms("g2"), alias="Dr Taylor"), item("g2").posts)
    await store.inbound.ingest([renamed])
    first = await store.jobs.head("support")
    assert first is not None and first.kind is JobKind.RENAME
    assert first.conversation_id == conversation.id and first.known_thread == "78"
    assert first.alias == "Dr Taylor"
    assert (await store.backlog())["chat_jobs"] == {"support": 2}  # the rename, then the SMS
    await store.inbound.ingest([IngestItem(dataclasses.replace(sms("g3"), alias="Dr Taylor"), ())])
    assert (await store.backlog())["chat_jobs"] == {"support": 2}  # same name: nothing more


async def queued_outbound(store: SqlStore, message_id: str = "900") -> int:
    request = OutboundRequest("office", NUMBER, "on my way", "support", message_id, "Sam", "78")
    outbox_id = await store.outbound.enqueue(request)
    assert outbox_id is not None
    return outbox_id


async def test_outbound_is_stored_once_per_chat_message(store: SqlStore) -> None:
    outbox_id = await queued_outbound(store)
    request = OutboundRequest("office", NUMBER, "on my way", "support", "900", "Sam")
    assert await store.outbound.enqueue(request) is None
    pending = await store.outbound.next_pending("office")
    assert pending is not None and pending.sms.id == outbox_id and not pending.maybe_sent
    status_job = await store.jobs.head("support")
    assert status_job is not None and status_job.kind is JobKind.STATUS
    assert status_job.message_id == "900"


async def test_an_interrupted_attempt_is_marked_maybe_sent(store: SqlStore) -> None:
    outbox_id = await queued_outbound(store)
    await store.outbound.begin_attempt(outbox_id)  # ... and the process dies here
    pending = await store.outbound.next_pending("office")
    assert pending is not None and pending.maybe_sent and pending.sms.attempts == 1


async def test_status_only_moves_forward_and_late_delivery_wins(store: SqlStore) -> None:
    outbox_id = await queued_outbound(store)
    await store.outbound.begin_attempt(outbox_id)
    await store.outbound.record_sent(outbox_id, "office", SendResult("G1"))

    async def apply(status: Status) -> Status:
        await store.outbound.apply_updates([DeliveryUpdate("office", "G1", status, status.value)])
        return (await store.outbound.by_id(outbox_id)).status

    assert await apply(Status.SENT) is Status.SENT
    assert await apply(Status.QUEUED) is Status.SENT  # out of order: ignored
    assert await apply(Status.FAILED) is Status.FAILED
    assert await apply(Status.SENT) is Status.FAILED  # failed is terminal ...
    assert await apply(Status.DELIVERED) is Status.DELIVERED  # ... but a late receipt wins
    assert await apply(Status.FAILED) is Status.DELIVERED


async def test_update_that_races_ahead_of_the_send_result_is_kept(store: SqlStore) -> None:
    outbox_id = await queued_outbound(store)
    await store.outbound.begin_attempt(outbox_id)
    assert (
        await store.outbound.apply_updates(
            [DeliveryUpdate("office", "G9", Status.SENT, "sms.sent")]
        )
        == []
    )
    await store.outbound.record_sent(outbox_id, "office", SendResult("G9"))
    assert (await store.outbound.by_id(outbox_id)).status is Status.SENT


async def test_duplicate_status_event_is_applied_once(store: SqlStore) -> None:
    outbox_id = await queued_outbound(store)
    await store.outbound.record_sent(outbox_id, "office", SendResult("G1"))
    update = DeliveryUpdate("office", "G1", Status.SENT, "sms.sent")
    assert await store.outbound.apply_updates([update], ("v2", "evt-1")) == [outbox_id]
    assert await store.outbound.apply_updates([update], ("v2", "evt-1")) is None


async def test_chat_jobs_are_fifo_and_deferral_keeps_the_head(store: SqlStore) -> None:
    await store.jobs.add_notices([Notice("support", "one"), Notice("support", "two")])
    head = await store.jobs.head("support")
    assert head is not None and head.text == "one"
    await store.jobs.defer(head.id, 60, "429")
    again = await store.jobs.head("support")
    assert (
        again is not None and again.id == head.id and again.next_attempt_at > head.next_attempt_at
    )
    await store.jobs.fail(head.id, "gone")
    following = await store.jobs.head("support")
    assert following is not None and following.text == "two"


async def test_notice_dedupe_key(store: SqlStore) -> None:
    notice = Notice("support", "refused")
    assert await store.jobs.add_notices([notice], dedupe=("notice", "m1"))
    assert not await store.jobs.add_notices([notice], dedupe=("notice", "m1"))
    assert (await store.backlog())["chat_jobs"] == {"support": 1}


async def test_concurrent_writers_all_succeed(store: SqlStore) -> None:
    results = await asyncio.gather(*(store.inbound.ingest([item(f"g{i}")]) for i in range(60)))
    assert all(r[0] is not None for r in results)
    assert (await store.backlog())["chat_jobs"] == {"support": 60}


async def test_purge_forgets_finished_work_only(store: SqlStore) -> None:
    await store.inbound.ingest([item("g1")])
    job = await store.jobs.head("support")
    assert job is not None
    await store.jobs.complete_post(job, ["1"], None)
    assert await store.purge(older_than=-1) >= 1
    assert await store.threads.conversation_for_message("support", "1") is not None
    assert await store.inbound.ingest([item("g1")]) == [None]  # the SMS itself is remembered


async def test_wal_is_folded_back_by_checkpoint(tmp_path: Any) -> None:
    opened = await SqlStore.open(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        await opened.inbound.ingest([item(f"w{i}") for i in range(300)])
        wal = tmp_path / "wal.db-wal"
        assert wal.stat().st_size > 0
        await opened.db.checkpoint()
        # After a checkpoint the next writer starts the WAL over instead of growing it.
        before = wal.stat().st_size
        for index in range(20):
            await opened.inbound.ingest([item(f"x{index}")])
            await opened.db.checkpoint()
        assert wal.stat().st_size <= before
    finally:
        await opened.close()


async def test_attachments_are_stored_with_their_sms_and_posted_after_its_text(
    store: SqlStore,
) -> None:
    picture = Attachment("image/png", "cat.png", data=b"\x89PNG\r\n")
    linked = Attachment("image/jpeg", url="https://media.example/1")
    mms = dataclasses.replace(sms("m1", text="look"), attachments=(picture, linked))
    posts = (Delivery("support", ("look",)), Delivery("oncall", ()))  # files alone, too
    assert (await store.inbound.ingest([IngestItem(mms, posts)]))[0] is not None
    assert await store.inbound.ingest([IngestItem(mms, posts)]) == [None]  # nothing twice

    support = await store.jobs.pending("support", 10)
    assert [j.kind for j in support] == [JobKind.SMS, JobKind.FILE, JobKind.FILE]
    files = [
        await store.inbound.attachment(j.attachment_id) for j in support[1:] if j.attachment_id
    ]
    assert files == [("office", picture), ("office", linked)]
    oncall = await store.jobs.pending("oncall", 10)
    assert [j.attachment_id for j in oncall] == [j.attachment_id for j in support[1:]]

    # Once posted and old, the bytes go; what the chat shows stays mapped.
    for job in support + oncall:
        await store.jobs.complete_post(job, [f"m{job.id}"], None)
    await store.purge(older_than=-1)
    assert support[1].attachment_id is not None
    _gateway, kept = await store.inbound.attachment(support[1].attachment_id)
    assert kept.data is None and kept.content_type == "image/png"
    assert await store.threads.conversation_for_message("support", f"m{support[1].id}") is not None


async def test_a_deleted_thread_is_forgotten_but_still_names_its_number(store: SqlStore) -> None:
    await store.inbound.ingest([item("g1")])
    conversation = await store.threads.conversation("office", NUMBER)
    job = await store.jobs.head("support")
    assert job is not None
    await store.jobs.complete_post(job, ["1700.01"], "1700.00", new_thread=True)
    assert await store.threads.forget("support", "1700.00") == conversation.id
    assert await store.threads.forget("support", "1700.00") is None
    assert await store.threads.find(conversation.id, "support") is None
    # A late reply in the old thread still finds the number through what we posted there.
    found = await store.threads.conversation_for_thread("support", "1700.00")
    assert found is not None and found.id == conversation.id


async def test_private_notices_and_outbound_deduplicated_by_event(store: SqlStore) -> None:
    notice = Notice("support", "no", thread_id="5", reply_to="6", private_to="U1")
    assert await store.jobs.add_notices([notice])
    job = await store.jobs.head("support")
    assert job is not None and (job.private_to, job.thread_id, job.message_id) == ("U1", "5", "6")
    request = OutboundRequest("office", NUMBER, "hi", "support", "m1", "Sam")
    assert await store.outbound.enqueue(request, event=("chat:support", "Ev1")) is not None
    # Slack's retry of the event, even as if it were another message: dropped by the event id.
    again = dataclasses.replace(request, origin_message_id="m2")
    assert await store.outbound.enqueue(again, event=("chat:support", "Ev1")) is None
    assert await store.outbound.enqueue(again, event=("chat:support", "Ev2")) is not None


async def test_every_queued_chat_job_wakes_its_chat_once_committed(store: SqlStore) -> None:
    woken: list[tuple[str, str]] = store.woken  # type: ignore[attr-defined]
    request = OutboundRequest("office", NUMBER, "on my way", "support", "900", "Sam")
    outbox_id = await store.outbound.enqueue(request, echoes=(("oncall", "📤 Sam: on my way"),))
    assert outbox_id is not None
    assert woken == [("send", "office"), ("chat", "support"), ("chat", "oncall")]
    await store.outbound.record_sent(outbox_id, "office", SendResult("p1"))
    echo = next(job for job in await store.jobs.pending("oncall", 5) if job.kind is JobKind.ECHO)
    woken.clear()
    # The echo is posted after the SMS was sent: its own post queues the status it shows, and
    # the chat's worker must hear of it (not find it at its next idle poll).
    await store.jobs.complete_post(echo, ["e1"], None)
    assert woken == [("chat", "oncall")]
    status = await store.jobs.head("oncall")
    assert status is not None and status.kind is JobKind.STATUS and status.message_id == "e1"
    # A new alias retitles the number's threads: that job wakes its chat too.
    assert echo.conversation_id is not None
    await store.threads.record(echo.conversation_id, "oncall", "7")
    woken.clear()
    await store.inbound.ingest([IngestItem(sms("g1"), ())])  # alias "Taylor", no posts
    assert woken == [("chat", "oncall")]
    rename = (await store.jobs.pending("oncall", 5))[-1]
    assert rename.kind is JobKind.RENAME and rename.known_thread == "7"
