"""Forum topics as threads: reuse, recreate after a human deletes one, reopen a closed one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import CUSTOMER, GROUP, Harness


async def test_later_sms_reuse_the_topic_across_a_restart(start_bridge: Callable[..., Any]) -> None:
    first: Harness = await start_bridge()
    await first.sms("before restart")
    await first.telegram.wait_for(lambda: len(first.posts()) == 1)
    await first.bridge.stop()
    second: Harness = await start_bridge()
    await second.sms("after restart")
    await second.telegram.wait_for(lambda: len(second.posts()) == 2)
    [topic] = second.topics()
    assert second.posts(thread_id=topic.thread_id) == ["before restart", "after restart"]


async def test_topic_deleted_by_a_human_is_recreated_and_the_sms_resent(harness: Harness) -> None:
    await harness.sms("first", alias="Taylor")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [old] = harness.topics()
    harness.telegram.delete_topic(GROUP, old.thread_id)  # Telegram tells the bot nothing
    await harness.sms("second")
    await harness.telegram.wait_for(
        lambda: len(harness.topics()) == 1 and harness.posts() == ["second"]
    )
    [new] = harness.topics()
    assert new.thread_id != old.thread_id
    assert new.name == "Taylor (+1 555-123-4567)"
    await harness.sms("third")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 2)
    assert harness.posts(thread_id=new.thread_id) == ["second", "third"]
    # The failed attempt really happened: Telegram said the thread was gone.
    assert harness.telegram.count("sendMessage", 400) == 1


async def test_a_reply_in_the_recreated_topic_reaches_the_number(harness: Harness) -> None:
    await harness.sms("hello")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    harness.telegram.delete_topic(GROUP, harness.topics()[0].thread_id)
    await harness.sms("again")
    await harness.telegram.wait_for(lambda: harness.posts() == ["again"])
    [topic] = harness.topics()
    harness.telegram.user_message(GROUP, 111, "answer", thread_id=topic.thread_id)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == CUSTOMER


async def test_closed_topic_is_reopened_to_post(harness: Harness) -> None:
    await harness.sms("first")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    harness.telegram.close_topic(GROUP, topic.thread_id)
    await harness.sms("while closed")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 2)
    [after] = harness.topics()
    assert after.thread_id == topic.thread_id and not after.closed
    assert harness.posts(thread_id=topic.thread_id) == ["first", "while closed"]
    assert harness.telegram.count("reopenForumTopic") == 1


async def test_a_chat_that_is_not_a_forum_keeps_the_sms_queued(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge()
    harness.telegram.add_group(-1009999, "Plain group")
    await harness.bridge.stop()
    harness = await start_bridge(chat={"chat_id": -1009999})
    await harness.sms("needs a forum")
    await harness.telegram.wait_for(lambda: harness.telegram.count("createForumTopic", 400) >= 1)
    assert harness.bridge.store is not None
    backlog = await harness.bridge.store.backlog()
    assert backlog["chat_jobs"] == {"support": 1}  # waits for an admin to fix it; not dropped
    ok, report = await harness.bridge.health()
    assert not ok
    assert report["workers"]["chat:support"]["state"] == "down"
    assert "not a forum" in (report["workers"]["chat:support"]["last_error"] or "")


async def test_a_topic_is_renamed_when_the_gateway_names_the_number(harness: Harness) -> None:
    await harness.sms("hi")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    assert topic.name == "+1 555-123-4567"
    await harness.sms("it's Taylor", alias="Taylor")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 2)
    [renamed] = harness.topics()
    assert renamed.thread_id == topic.thread_id
    assert renamed.name == "Taylor (+1 555-123-4567)"
    assert harness.posts(thread_id=topic.thread_id) == ["hi", "it's Taylor"]
    # Renamed before the SMS that brought the name is shown in it.
    methods = [c.method for c in harness.telegram.calls if c.method != "getUpdates"]
    assert methods.index("editForumTopic") < len(methods) - 1 - methods[::-1].index("sendMessage")
    await harness.sms("same name", alias="Taylor")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 3)
    await harness.idle()
    assert harness.telegram.count("editForumTopic") == 1


async def test_renaming_a_deleted_topic_opens_one_with_the_new_name(harness: Harness) -> None:
    await harness.sms("hi")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [old] = harness.topics()
    harness.telegram.delete_topic(GROUP, old.thread_id)
    await harness.sms("it's Taylor", alias="Taylor")
    await harness.telegram.wait_for(lambda: harness.posts() == ["it's Taylor"])
    [new] = harness.topics()
    assert new.thread_id != old.thread_id
    assert new.name == "Taylor (+1 555-123-4567)"
    assert harness.telegram.count("editForumTopic", 400) == 1
