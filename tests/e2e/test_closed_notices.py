"""What the bridge posts into a topic closed by /close: it is posted, and the topic stays
closed (Telegram refuses a post in a closed topic with TOPIC_CLOSED: the bridge reopens it for
the post and closes it again). Only an inbound SMS reopens a topic for good."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from conftest import AGENT, GROUP, Harness

from bridge.store.schema import chat_jobs, threads


async def topic_for(harness: Harness, text: str = "hi") -> int:
    await harness.sms(text)
    await harness.telegram.wait_for(lambda: text in harness.posts())
    await harness.idle()
    [topic] = harness.topics()
    return int(topic.thread_id)


async def rows(harness: Harness, query: Any) -> list[Any]:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return list((await conn.execute(query)).all())


def answers(harness: Harness, message_id: int) -> list[str]:
    return [
        m.get("text") or ""
        for m in harness.telegram.sent_messages(GROUP)
        if (m.get("reply_to_message") or {}).get("message_id") == message_id
    ]


async def closed_in_store(harness: Harness) -> list[bool]:
    return [r.closed_at is not None for r in await rows(harness, sa.select(threads.c.closed_at))]


async def failed_jobs(harness: Harness) -> list[Any]:
    query = sa.select(chat_jobs.c.kind, chat_jobs.c.last_error).where(chat_jobs.c.state == "failed")
    return await rows(harness, query)


async def close(harness: Harness, thread: int) -> None:
    sent = harness.telegram.user_message(GROUP, AGENT, "/close", thread_id=thread)
    await harness.telegram.wait_for(lambda: bool(answers(harness, sent["message_id"])))
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed)
    await harness.settled()


async def test_a_command_answered_in_a_closed_topic_is_posted_and_the_topic_stays_closed(
    harness: Harness,
) -> None:
    thread = await topic_for(harness)
    await close(harness, thread)
    # An admin may still write in a closed topic; the bridge's answer must not be lost.
    sent = harness.telegram.user_message(GROUP, AGENT, "/status", thread_id=thread)
    await harness.telegram.wait_for(lambda: bool(answers(harness, sent["message_id"])))
    assert answers(harness, sent["message_id"])[0].startswith("📇")
    await harness.settled()
    assert harness.topics()[0].closed
    assert await closed_in_store(harness) == [True]
    assert await failed_jobs(harness) == []


async def test_a_failed_reply_in_a_closed_topic_still_says_why(harness: Harness) -> None:
    thread = await topic_for(harness)
    await close(harness, thread)
    harness.telegram.user_message(GROUP, AGENT, "On its way", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.gateway.deliver_status_v2(
        harness.signed_hook, harness.gateway.sent[0].guid, "sms.failed", reason="No coverage"
    )
    await harness.telegram.wait_for(
        lambda: any("No coverage" in p for p in harness.posts(thread_id=thread))
    )
    await harness.settled()
    assert harness.topics()[0].closed
    assert await closed_in_store(harness) == [True]
    assert await failed_jobs(harness) == []


async def test_the_close_announcement_is_posted_even_when_the_close_goes_first(
    harness: Harness,
) -> None:
    """The announcement and the close are separate jobs: a flood wait on the announcement lets
    the close go first, and the announcement then finds the topic closed."""
    thread = await topic_for(harness)
    harness.telegram.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    sent = harness.telegram.user_message(GROUP, AGENT, "/close", thread_id=thread)
    await harness.telegram.wait_for(lambda: bool(answers(harness, sent["message_id"])), 10)
    assert answers(harness, sent["message_id"]) == [
        "🔒 Alice closed this topic. The next SMS from this number reopens it."
    ]
    await harness.settled()
    assert harness.topics()[0].closed
    assert await closed_in_store(harness) == [True]
    assert await failed_jobs(harness) == []
