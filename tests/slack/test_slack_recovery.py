"""Slack trouble a thread must survive: missing scopes, reaction limits, a thread the store lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from slack_support import AGENT_ID, CHANNEL, SlackHarness, start_slack, world

from bridge.store.schema import chat_messages, threads
from connectors.chat.slack.fake import FakeSlack

CUSTOMER = "+15551234567"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


async def test_a_missing_reactions_scope_does_not_stall_the_thread(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for("first")
    slack.fail_next("reactions.add", "missing_scope", count=1000)
    slack.user_message(CHANNEL, AGENT_ID, "answer", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.sms("second")
    await slack.wait_for(lambda: "second" in bridge.thread(ts))
    assert slack.count("reactions.add", error="missing_scope") >= 1


async def test_a_missing_files_scope_does_not_stall_the_thread(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for("first")
    slack.fail_next("files.getUploadURLExternal", "missing_scope", count=1000)
    await bridge.mms(b"\x89PNG\r\n\x1a\n")
    await bridge.sms("after the picture")
    await slack.wait_for(lambda: "after the picture" in bridge.thread(ts))
    assert slack.uploads(CHANNEL) == []


async def test_a_reactions_rate_limit_does_not_hold_up_posting(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for("first")
    slack.fail_next("reactions.add", "ratelimited", status=429, retry_after=30)
    slack.user_message(CHANNEL, AGENT_ID, "answer", thread_ts=ts)
    await slack.wait_for(lambda: slack.count("reactions.add", status=429) == 1)
    # Another number's SMS is posted now, not once the reactions' 30 seconds are over.
    await bridge.sms("from someone else", number="+15559876543")
    await slack.wait_for(
        lambda: any("from someone else" in bridge.thread(p["ts"]) for p in bridge.parents()),
        timeout=5,
    )


async def test_an_answer_in_a_thread_the_store_lost_still_goes_out(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    first = await start_slack(start_bridge, slack)
    ts = await first.thread_for("hello")
    # The crash: the thread was posted, but nothing of it was committed to the store.
    store = first.bridge.store
    assert store is not None
    async with store.db.write() as conn:
        await conn.execute(threads.delete().where(threads.c.thread_id == ts))
        await conn.execute(
            chat_messages.delete().where(
                sa.or_(chat_messages.c.thread_id == ts, chat_messages.c.message_id == ts)
            )
        )
    await first.bridge.stop()
    second = await start_slack(start_bridge, slack)
    slack.user_message(CHANNEL, AGENT_ID, "we found your parcel", thread_ts=ts)
    await second.gateway.wait_for(lambda: len(second.gateway.sent) == 1)
    slack.user_message(CHANNEL, AGENT_ID, "it comes tomorrow", thread_ts=ts)
    await second.gateway.wait_for(lambda: len(second.gateway.sent) == 2)
    sent = [(s.recipients, s.message) for s in second.gateway.sent]
    assert sent == [(CUSTOMER, "we found your parcel"), (CUSTOMER, "it comes tomorrow")]
    # The thread's first message was read once, by its ts; the channel was never searched.
    replies = [c.params for c in slack.calls if c.method == "conversations.replies"]
    assert [(p["ts"], str(p["limit"])) for p in replies] == [(ts, "1")]


async def test_threads_that_are_not_ours_are_not_looked_up(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    await bridge.thread_for("hello")
    chatter = slack.user_message(CHANNEL, AGENT_ID, "lunch?")
    slack.user_message(CHANNEL, AGENT_ID, "yes", thread_ts=chatter["ts"])
    await bridge.settled()
    assert bridge.gateway.sent == []
    assert slack.count("conversations.replies") == 0
