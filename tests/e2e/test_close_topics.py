"""Close and reopen jobs (/close, /reopen): a forum topic is closed and reopened through the
Bot API, an inbound SMS reopens a closed one, and where nothing can be closed the job is done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from conftest import AGENT, CUSTOMER, GROUP, Harness

from bridge.ports import ClosesThreads
from bridge.store.records import JobKind
from bridge.store.schema import chat_jobs
from connectors.chat.telegram.fake import FakeTelegram


async def queue(harness: Harness, kind: JobKind, number: str = CUSTOMER) -> None:
    """What /close and /reopen queue: a job for the number's conversation in the chat."""
    store = harness.bridge.store
    assert store is not None
    conversation = await store.threads.conversation("office", number)
    async with store.shared.write() as tx:
        await tx.add_jobs(
            [{"chat": "support", "kind": kind.value, "conversation_id": conversation.id}]
        )


async def states(harness: Harness, kind: JobKind) -> list[str]:
    store = harness.bridge.store
    assert store is not None
    async with store.shared.read() as conn:
        rows = await conn.execute(
            sa.select(chat_jobs.c.state).where(chat_jobs.c.kind == kind.value).order_by("id")
        )
        return [row.state for row in rows]


async def test_a_close_job_closes_the_topic_and_the_next_sms_reopens_it(harness: Harness) -> None:
    assert isinstance(harness.bridge.chats["support"], ClosesThreads)  # a forum
    await harness.sms("first")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    await queue(harness, JobKind.CLOSE)
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed)
    # Closed again (a second /close, or a retry after a lost answer): Telegram says
    # TOPIC_NOT_MODIFIED, which is no failure.
    await queue(harness, JobKind.CLOSE)
    await harness.telegram.wait_for(lambda: harness.telegram.count("closeForumTopic") == 2)
    await harness.idle()
    assert harness.telegram.count("closeForumTopic", 400) == 1
    assert await states(harness, JobKind.CLOSE) == ["done", "done"]
    # The customer writes again: Telegram refuses the post (TOPIC_CLOSED), the topic is
    # reopened and the SMS posted in it.
    await harness.sms("are you there?")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 2)
    [after] = harness.topics()
    assert after.thread_id == topic.thread_id and not after.closed
    assert harness.posts(thread_id=topic.thread_id) == ["first", "are you there?"]
    assert harness.telegram.count("sendMessage", 400) == 1
    assert harness.telegram.count("reopenForumTopic") == 1


async def test_a_reopen_job_reopens_a_closed_topic(harness: Harness) -> None:
    await harness.sms("first")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    harness.telegram.close_topic(GROUP, topic.thread_id)
    await queue(harness, JobKind.REOPEN)
    await harness.telegram.wait_for(lambda: not harness.topics()[0].closed)
    await queue(harness, JobKind.REOPEN)  # open already: done all the same
    await harness.telegram.wait_for(lambda: harness.telegram.count("reopenForumTopic") == 2)
    await harness.idle()
    assert await states(harness, JobKind.REOPEN) == ["done", "done"]
    harness.telegram.user_message(GROUP, AGENT, "we are back", thread_id=topic.thread_id)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)


async def test_a_close_job_without_a_topic_is_done_with_no_call(harness: Harness) -> None:
    await harness.sms("first", number="+15550001111")  # another number has a topic
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    await queue(harness, JobKind.CLOSE)  # CUSTOMER has none here yet
    await harness.settled()
    assert await states(harness, JobKind.CLOSE) == ["done"]
    assert harness.telegram.count("closeForumTopic") == 0


async def test_private_chat_topics_cannot_be_closed_so_the_job_is_done(
    start_bridge: Callable[..., Any], telegram: FakeTelegram
) -> None:
    telegram.has_topics_enabled = True  # topics in the private chat, which only a forum closes
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    assert not isinstance(harness.bridge.chats["support"], ClosesThreads)
    await harness.sms("first")
    await telegram.wait_for(lambda: len(telegram.sent_messages(AGENT)) == 1)
    assert len(telegram.topics(AGENT)) == 1
    await queue(harness, JobKind.CLOSE)
    await harness.settled()
    assert await states(harness, JobKind.CLOSE) == ["done"]
    assert telegram.count("closeForumTopic") == 0
