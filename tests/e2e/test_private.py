"""Personal forwarding: a private chat with the bot, a header per SMS, answers by reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import AGENT, CUSTOMER, Harness

from connectors.chat.telegram.fake import FakeLimits


async def private(start_bridge: Callable[..., Any]) -> Harness:
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    return harness


def texts(harness: Harness) -> list[str]:
    return [m.get("text") or "" for m in harness.telegram.sent_messages(AGENT)]


async def test_sms_is_posted_with_a_header_naming_the_number(
    start_bridge: Callable[..., Any],
) -> None:
    harness = await private(start_bridge)
    await harness.sms("Your parcel is here", alias="DHL")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    assert texts(harness) == ["📩 DHL (+1 555-123-4567)\nYour parcel is here"]
    assert harness.telegram.topics(AGENT) == []
    assert harness.telegram.violations == []


async def test_replying_to_a_bridged_sms_answers_that_number(
    start_bridge: Callable[..., Any],
) -> None:
    harness = await private(start_bridge)
    await harness.sms("from the first", number=CUSTOMER)
    await harness.sms("from the second", number="+15550002222")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 2)
    second = harness.telegram.sent_messages(AGENT)[1]
    reply = harness.telegram.user_message(AGENT, AGENT, "got it", reply_to=second["message_id"])
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15550002222"
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(AGENT, reply["message_id"]) == ["✍"]
    )


async def test_a_message_that_is_not_a_reply_is_not_sent(start_bridge: Callable[..., Any]) -> None:
    harness = await private(start_bridge)
    await harness.sms("hello")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    harness.telegram.user_message(AGENT, AGENT, "just a note to self")
    await harness.settled()
    assert harness.gateway.sent == []


async def test_sms_command_and_reply_to_it(start_bridge: Callable[..., Any]) -> None:
    harness = await private(start_bridge)
    command = harness.telegram.user_message(AGENT, AGENT, "/sms +15557654321 are you free?")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15557654321"
    # Replying to one's own /sms message continues that conversation.
    harness.telegram.user_message(AGENT, AGENT, "tonight?", reply_to=command["message_id"])
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 2)
    assert harness.gateway.sent[1].recipients == "+15557654321"


async def test_private_chat_is_paced_at_one_message_a_second(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        chat={"chat_id": AGENT, "pacing": {"chat": {"messages": 1, "seconds": 0.5}}}
    )
    harness.telegram.limits = FakeLimits(per_chat=(1, 0.5), group=None, overall=None)
    for index in range(4):
        await harness.sms(f"burst {index}")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 4, timeout=10)
    assert harness.telegram.count("sendMessage", 429) == 0
    times = sorted(c.at for c in harness.telegram.calls if c.method == "sendMessage")
    assert times[-1] - times[0] >= 1.4  # 4 posts, one per 0.5 s


async def test_reply_to_our_post_without_a_stored_mapping_uses_its_header(
    start_bridge: Callable[..., Any],
) -> None:
    from sqlalchemy import text

    harness = await private(start_bridge)
    await harness.sms("hello", number="+15550005555")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.write() as conn:
        await conn.execute(text("DELETE FROM chat_messages"))
    post = harness.telegram.sent_messages(AGENT)[0]
    harness.telegram.user_message(AGENT, AGENT, "still works", reply_to=post["message_id"])
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15550005555"


async def test_with_threaded_mode_each_number_gets_a_topic_in_the_private_chat(
    start_bridge: Callable[..., Any],
) -> None:
    """Bot API 9.4: a bot with topics in private chats (getMe's has_topics_enabled) gives each
    number a topic there, as in a forum, instead of a header on every SMS."""
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.bridge.stop()
    harness.telegram.has_topics_enabled = True  # the owner turned Threaded Mode on
    harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.sms("Your parcel is here", alias="DHL")
    await harness.sms("Call me back", number="+15550002222")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 2)
    first, second = harness.telegram.topics(AGENT)
    assert (first.name, second.name) == ("DHL (+1 555-123-4567)", "+1 555-000-2222")
    assert [m["text"] for m in harness.telegram.sent_messages(AGENT, first.thread_id)] == [
        "Your parcel is here"
    ]
    assert [m["text"] for m in harness.telegram.sent_messages(AGENT, second.thread_id)] == [
        "Call me back"
    ]
    # Answering is writing in the number's topic, no reply needed.
    harness.telegram.user_message(AGENT, AGENT, "on my way", thread_id=second.thread_id)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15550002222"
    assert harness.gateway.sent[0].message == "on my way"
    await harness.sms("and another", alias="DHL")  # the same topic again
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 3)
    assert len(harness.telegram.topics(AGENT)) == 2
    ok, report = await harness.bridge.health()
    assert ok and report["chats"]["support"]["threads"] is True  # type: ignore[index]


async def test_without_threaded_mode_or_with_replies_configured_the_header_stays(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.sms("no topics here")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    await harness.bridge.stop()
    harness.telegram.has_topics_enabled = True
    harness = await start_bridge(chat={"chat_id": AGENT, "threads": "replies"})
    await harness.sms("nor here")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 2)
    assert texts(harness) == [
        "📩 +1 555-123-4567\nno topics here",
        "📩 +1 555-123-4567\nnor here",
    ]
    assert harness.telegram.topics(AGENT) == []


async def test_when_telegram_refuses_private_topics_the_sms_comes_with_a_header(
    start_bridge: Callable[..., Any],
) -> None:
    """Bot API 10.0 regressed: createForumTopic in a private chat failed with
    BOT_FORUM_CREATE_FORBIDDEN though getMe said has_topics_enabled (tdlib/telegram-bot-api#847).
    The SMS must still reach the chat, with a header, and answering by reply must work."""
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.bridge.stop()
    harness.telegram.has_topics_enabled = True
    harness = await start_bridge(chat={"chat_id": AGENT})
    harness.telegram.fail_next(
        "createForumTopic", status=400, description="Bad Request: BOT_FORUM_CREATE_FORBIDDEN"
    )
    await harness.sms("Your parcel is here", alias="DHL")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    assert texts(harness) == ["📩 DHL (+1 555-123-4567)\nYour parcel is here"]
    assert harness.telegram.topics(AGENT) == []
    # From now on the chat has no topics: the next SMS comes with its header at once.
    await harness.sms("Call me back", number="+15550002222")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 2)
    assert texts(harness)[1] == "📩 +1 555-000-2222\nCall me back"
    assert harness.telegram.count("createForumTopic") == 1
    post = harness.telegram.sent_messages(AGENT)[0]
    harness.telegram.user_message(AGENT, AGENT, "on my way", reply_to=post["message_id"])
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15551234567"


async def test_when_threaded_mode_goes_off_the_waiting_sms_comes_with_a_header(
    start_bridge: Callable[..., Any],
) -> None:
    """The owner turned Threaded Mode off after the start: Telegram answers "the chat is not a
    forum" (it is a private chat: not the chat's fault, as it would be for a group)."""
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.bridge.stop()
    harness.telegram.has_topics_enabled = True
    harness = await start_bridge(chat={"chat_id": AGENT})
    harness.telegram.has_topics_enabled = False
    await harness.sms("Your parcel is here")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    assert texts(harness) == ["📩 +1 555-123-4567\nYour parcel is here"]
    ok, _ = await harness.bridge.health()
    assert ok


async def test_a_topic_that_breaks_later_falls_back_to_a_header_too(
    start_bridge: Callable[..., Any],
) -> None:
    """The same regression seen from a number's existing topic: the post is refused
    ("message thread not found"), and so is the new topic that would replace it."""
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.bridge.stop()
    harness.telegram.has_topics_enabled = True
    harness = await start_bridge(chat={"chat_id": AGENT})
    await harness.sms("first")
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 1)
    harness.telegram.fail_next(
        "sendMessage", status=400, description="Bad Request: message thread not found"
    )
    harness.telegram.fail_next(
        "createForumTopic", status=400, description="Bad Request: BOT_FORUM_CREATE_FORBIDDEN"
    )
    long = "x" * 4096  # as long as a post can be: its header goes in a post of its own
    await harness.sms(long)
    await harness.telegram.wait_for(lambda: len(texts(harness)) == 3)
    header, body = harness.telegram.sent_messages(AGENT)[1:]
    assert (header["text"], body["text"]) == ("📩 +1 555-123-4567", long)
    assert "message_thread_id" not in body
    await harness.idle()
    harness.telegram.user_message(AGENT, AGENT, "got it", reply_to=body["message_id"])
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15551234567"
