"""Thread commands on Telegram: /name, /close, /reopen, /block, /unblock, /status, /retry, help;
and the notice in a private chat for a message that answers no SMS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from conftest import AGENT, CUSTOMER, GROUP, STRANGER, Harness

from bridge.desk import COMMANDS
from bridge.models import COMMAND_WORDS
from bridge.replies import UNANCHORED
from bridge.store.schema import chat_jobs, outbox, threads

TITLE = "Alice Smith (+1 555-123-4567)"


async def topic_for(harness: Harness, text: str = "hi", **kw: Any) -> int:
    """The number's topic, once its SMS is posted there (as a person would see it)."""
    await harness.sms(text, **kw)
    await harness.telegram.wait_for(lambda: text in harness.posts())
    await harness.idle()
    return next(t.thread_id for t in harness.topics() if "4567" in t.name)


async def command(harness: Harness, text: str, thread: int | None, user: int = AGENT) -> str:
    """Run a command and wait for the bridge's answer to it (a reply to the command)."""
    sent = harness.telegram.user_message(GROUP, user, text, thread_id=thread)
    answer: list[str] = []

    def answered() -> bool:
        answer[:] = [
            m.get("text") or ""
            for m in harness.telegram.sent_messages(GROUP)
            if (m.get("reply_to_message") or {}).get("message_id") == sent["message_id"]
        ]
        return bool(answer)

    await harness.telegram.wait_for(answered)
    return answer[0]


async def rows(harness: Harness, query: Any) -> list[Any]:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return list((await conn.execute(query)).all())


def test_the_slack_command_words_are_the_commands() -> None:
    assert set(COMMANDS) - {"start"} == COMMAND_WORDS


async def test_name_renames_the_topic_and_outlives_a_restart_and_the_gateway_alias(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge()
    thread = await topic_for(harness, "hello", alias="Gateway Guess")
    assert [t.name for t in harness.topics()] == ["Gateway Guess (+1 555-123-4567)"]
    answer = await command(harness, "/name  Alice   Smith ", thread)
    assert answer == f"🏷 Alice named {TITLE}."
    await harness.telegram.wait_for(lambda: [t.name for t in harness.topics()] == [TITLE])
    assert await command(harness, "/name", thread) == "+1 555-123-4567 is named Alice Smith."
    await harness.bridge.stop()

    again: Harness = await start_bridge()
    # The gateway still says "Gateway Guess", then a new alias: neither renames the topic.
    await again.sms("back again", alias="Another Guess")
    await again.telegram.wait_for(lambda: "back again" in again.posts(thread_id=thread))
    await again.settled()
    assert [t.name for t in again.topics()] == [TITLE]
    assert await command(again, "/name -", thread) == "🏷 Alice cleared the name of +1 555-123-4567."
    # Now the gateway's alias shows again.
    await again.telegram.wait_for(
        lambda: [t.name for t in again.topics()] == ["Another Guess (+1 555-123-4567)"]
    )


async def test_a_long_name_leaves_the_number_in_the_title(harness: Harness) -> None:
    """A name may be 255 characters, a topic title 128: the name is cut, not the number."""
    thread = await topic_for(harness)
    await command(harness, "/name " + "Alice " * 40, thread)
    await harness.telegram.wait_for(lambda: harness.topics()[0].name != "+1 555-123-4567")
    [title] = [t.name for t in harness.topics()]
    assert len(title) <= 128
    assert title.startswith("Alice Alice") and title.endswith("… (+1 555-123-4567)")


async def test_a_name_heads_the_sms_in_a_private_chat(start_bridge: Callable[..., Any]) -> None:
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    sms = harness.telegram.sent_messages
    await harness.sms("first", alias="Guess")
    await harness.telegram.wait_for(lambda: len(sms(AGENT)) == 1)
    first = sms(AGENT)[0]
    assert first["text"] == "📩 Guess (+1 555-123-4567)\nfirst"
    harness.telegram.user_message(AGENT, AGENT, "/name Alice Smith", reply_to=first["message_id"])
    await harness.telegram.wait_for(lambda: any("named" in (m["text"]) for m in sms(AGENT)))
    await harness.sms("second", alias="Guess")
    await harness.telegram.wait_for(lambda: sms(AGENT)[-1]["text"].endswith("second"))
    assert sms(AGENT)[-1]["text"] == f"📩 {TITLE}\nsecond"


async def test_a_message_answering_no_sms_in_a_private_chat_says_how_to_answer(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(chat={"chat_id": AGENT})
    harness.telegram.user_message(AGENT, AGENT, "note: for myself")
    unknown = harness.telegram.user_message(AGENT, AGENT, "/frobnicate do things")
    hello = harness.telegram.user_message(AGENT, AGENT, "hello?")
    await harness.telegram.wait_for(lambda: len(harness.telegram.sent_messages(AGENT)) == 2)
    await harness.settled()
    # No other bot listens in a private chat: an unknown command is told the commands.
    help_, notice = harness.telegram.sent_messages(AGENT)
    assert help_["text"].startswith("Unknown command /frobnicate.") and "/sms" in help_["text"]
    assert help_["reply_to_message"]["message_id"] == unknown["message_id"]
    assert notice["text"] == UNANCHORED
    assert notice["reply_to_message"]["message_id"] == hello["message_id"]
    assert harness.gateway.sent == []


async def test_close_and_reopen_and_an_sms_reopens(harness: Harness) -> None:
    thread = await topic_for(harness)
    answer = await command(harness, "/close", thread)
    assert answer == "🔒 Alice closed this topic. The next SMS from this number reopens it."
    closed = sa.select(threads.c.closed_at)
    assert [r.closed_at is not None for r in await rows(harness, closed)] == [True]
    kinds = sa.select(chat_jobs.c.kind).where(chat_jobs.c.kind.in_(["close", "reopen"]))
    assert [r.kind for r in await rows(harness, kinds)] == ["close"]
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed)
    # Closed again: a closed topic takes no answer (the service message says it all).
    posts = len(harness.posts())
    harness.telegram.user_message(GROUP, AGENT, "/close", thread_id=thread)
    await harness.settled()
    assert len(harness.posts()) == posts
    assert harness.telegram.count("sendMessage", 400) == 0

    await harness.sms("still there?")  # reopens it: the SMS shows in the same topic
    await harness.telegram.wait_for(lambda: "still there?" in harness.posts(thread_id=thread))
    assert not harness.topics()[0].closed
    assert [r.closed_at for r in await rows(harness, closed)] == [None]
    assert await command(harness, "/reopen", thread) == "This topic is reopened already."
    await command(harness, "/close", thread)
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed)
    assert await command(harness, "/reopen", thread) == "🔓 Alice reopened this topic."
    assert not harness.topics()[0].closed
    assert [r.kind for r in await rows(harness, kinds)] == ["close", "close", "reopen"]


async def test_close_announces_before_it_closes_even_when_the_post_must_wait(
    harness: Harness,
) -> None:
    """The announcement and the close are in order: a close that ran first would leave the
    announcement to a closed topic, refused (TOPIC_CLOSED), then reopened and closed again
    around it (two more service messages)."""
    thread = await topic_for(harness)
    harness.telegram.fail_next(
        "sendMessage", status=429, description="Too Many Requests", retry_after=1
    )
    harness.telegram.user_message(GROUP, AGENT, "/close", thread_id=thread)
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed, 10)
    await harness.settled(10)
    announced = "🔒 Alice closed this topic. The next SMS from this number reopens it."
    assert announced in harness.posts(thread_id=thread)
    assert harness.topics()[0].closed
    assert harness.telegram.count("sendMessage", 400) == 0


async def test_an_sms_no_route_posts_leaves_the_topic_closed(
    start_bridge: Callable[..., Any],
) -> None:
    """Only an SMS posted in the topic reopens it: one a route drops leaves it closed, and
    /reopen still reopens it."""
    harness: Harness = await start_bridge(
        routes=[
            {"name": "spam", "match": {"text": ["re:^SPAM"]}, "action": "drop"},
            {"gateway": "office", "chat": "support", "default": True},
        ]
    )
    thread = await topic_for(harness)
    await command(harness, "/close", thread)
    await harness.telegram.wait_for(lambda: harness.topics()[0].closed)
    await harness.sms("SPAM: you won")
    await harness.settled()
    assert harness.topics()[0].closed
    assert await command(harness, "/reopen", thread) == "🔓 Alice reopened this topic."
    await harness.telegram.wait_for(lambda: not harness.topics()[0].closed)


async def test_block_and_unblock_keep_their_state(harness: Harness) -> None:
    thread = await topic_for(harness)
    assert await command(harness, "/block", thread) == (
        "🚫 Alice blocked +1 555-123-4567: its SMS are stored but not posted, and replies to "
        "it are refused."
    )
    assert await command(harness, "/block", thread) == "+1 555-123-4567 is blocked already."
    assert harness.bridge.store is not None
    assert (await harness.bridge.store.contacts.get(CUSTOMER)).blocked
    assert "Blocked: yes" in await command(harness, "/status", thread)
    assert await command(harness, "/unblock", thread) == "✅ Alice unblocked +1 555-123-4567."
    assert not (await harness.bridge.store.contacts.get(CUSTOMER)).blocked


async def test_status_shows_the_number_at_a_glance(harness: Harness) -> None:
    thread = await topic_for(harness, "Where is my order?", alias="Jo")
    harness.telegram.user_message(GROUP, AGENT, "It left this morning", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.gateway.deliver_status_v2(
        harness.signed_hook, harness.gateway.sent[0].guid, "sms.failed", reason="No coverage"
    )
    await harness.telegram.wait_for(
        lambda: any("No coverage" in p for p in harness.posts(thread_id=thread))
    )
    card = (await command(harness, "/status", thread)).splitlines()
    assert card[0] == "📇 Jo (+1 555-123-4567)"
    assert card[1].startswith("Via: gateway office, device ")
    assert card[2].startswith("Last in: 20") and card[2].endswith("UTC “Where is my order?”")
    assert card[3].endswith("“It left this morning” (failed)")
    assert card[4] == "Opted out: no · Blocked: no · Closed: no"
    assert card[5] == "Failed sends: 1, last: No coverage"


async def test_retry_resends_the_last_failed_sms_exactly_once(harness: Harness) -> None:
    thread = await topic_for(harness)
    assert await command(harness, "/retry", thread) == (
        "Nothing to retry: no SMS to this number failed."
    )
    harness.telegram.user_message(GROUP, AGENT, "Your parcel", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.gateway.deliver_status_v2(
        harness.signed_hook, harness.gateway.sent[0].guid, "sms.failed", reason="Busy"
    )
    await harness.telegram.wait_for(
        lambda: any("Busy" in p for p in harness.posts(thread_id=thread))
    )
    assert await command(harness, "/retry", thread) == "🔁 Sending again: “Your parcel”"
    assert await command(harness, "/retry", thread) == (
        "That failed SMS was retried already; nothing was sent."
    )
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 2)
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == ["Your parcel", "Your parcel"]
    purposes = sa.select(outbox.c.purpose, outbox.c.origin_message_id).order_by(outbox.c.id)
    retried = await rows(harness, purposes)
    assert [r.purpose for r in retried] == ["reply", "retry"]
    assert retried[1].origin_message_id == "retry:1"
    # The resent SMS shows in the topic, with its status.
    assert "📤 Alice (retry): Your parcel" in harness.posts(thread_id=thread)


async def test_strangers_may_look_but_not_change(harness: Harness) -> None:
    thread = await topic_for(harness)
    for text in ("/close", "/block", "/retry", "/name Mallory"):
        assert "not allowed" in await command(harness, text, thread, user=STRANGER)
    assert (await command(harness, "/status", thread, user=STRANGER)).startswith("📇")
    assert harness.bridge.store is not None
    contact = await harness.bridge.store.contacts.get(CUSTOMER)
    assert (contact.name, contact.blocked) == (None, False)
    assert [r.closed_at for r in await rows(harness, sa.select(threads.c.closed_at))] == [None]
    await harness.settled()
    assert harness.gateway.sent == []


async def test_an_unknown_command_in_a_topic_gets_the_help(harness: Harness) -> None:
    thread = await topic_for(harness)
    answer = await command(harness, "/frobnicate", thread)
    assert answer.startswith("Unknown command /frobnicate.")
    assert "/close, /reopen" in answer and "/retry" in answer
    harness.telegram.user_message(GROUP, AGENT, "/otherbot stuff")  # General: not ours
    await harness.settled()
    assert not any("otherbot" in p for p in harness.posts())


async def test_a_command_addressed_to_another_bot_is_not_ours(harness: Harness) -> None:
    """/close@other_bot in a number's topic is for that bot: it changes nothing here, gets no
    answer, and is no SMS either; /status@smsbridge_bot is ours."""
    thread = await topic_for(harness)
    harness.telegram.user_message(GROUP, AGENT, "/close@other_bot", thread_id=thread)
    harness.telegram.user_message(GROUP, AGENT, "/block@other_bot now", thread_id=thread)
    assert (await command(harness, "/status@smsbridge_bot", thread)).startswith("📇")
    await harness.settled()
    assert [r.closed_at for r in await rows(harness, sa.select(threads.c.closed_at))] == [None]
    assert harness.bridge.store is not None
    assert not (await harness.bridge.store.contacts.get(CUSTOMER)).blocked
    assert [p[:1] for p in harness.posts(thread_id=thread)] == ["h", "📇"]
    assert harness.gateway.sent == []


async def test_commands_outside_a_topic_say_where_to_use_them(harness: Harness) -> None:
    assert await command(harness, "/status", None) == "Use /status inside a number's topic."
