"""Replies: a message in a number's topic becomes an SMS; commands; who may send; echoes."""

from __future__ import annotations

from conftest import AGENT, CUSTOMER, GROUP, STRANGER, Harness

from connectors.chat.telegram.fake import ANY_THREAD


async def topic_for(harness: Harness, text: str = "hi", number: str = CUSTOMER) -> int:
    """The number's topic, once its SMS is posted there (as a person would see it)."""
    await harness.sms(text, number=number)
    await harness.telegram.wait_for(lambda: text in harness.posts())
    await harness.idle()
    return next(t.thread_id for t in harness.topics() if t.name.endswith(number[-4:]))


async def test_reply_in_topic_is_sent_as_sms_and_marked_queued(harness: Harness) -> None:
    thread = await topic_for(harness)
    reply = harness.telegram.user_message(GROUP, AGENT, "On my way!", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    sms = harness.gateway.sent[0]
    assert (sms.recipients, sms.message) == (CUSTOMER, "On my way!")
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, reply["message_id"]) == ["✍"]
    )
    assert harness.telegram.violations == []


async def test_stranger_is_refused_and_nothing_is_sent(harness: Harness) -> None:
    thread = await topic_for(harness)
    harness.telegram.user_message(GROUP, STRANGER, "let me in", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: any("not allowed" in p for p in harness.posts(thread_id=thread))
    )
    await harness.settled()
    assert harness.gateway.sent == []


async def test_bots_and_our_own_posts_never_become_sms(harness: Harness) -> None:
    thread = await topic_for(harness)
    harness.telegram.user_message(GROUP, 999, "I am a bot", thread_id=thread, is_bot=True)
    harness.telegram.user_message(GROUP, AGENT, "real reply", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == ["real reply"]


async def test_chatter_in_general_is_not_sent(harness: Harness) -> None:
    await topic_for(harness)
    harness.telegram.user_message(GROUP, AGENT, "lunch anyone?")
    await harness.settled()
    assert harness.gateway.sent == []


async def test_sms_command_starts_a_conversation(harness: Harness) -> None:
    command = harness.telegram.user_message(
        GROUP, AGENT, "/sms +1 555 987 6543 Your table is ready"
    )
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert (harness.gateway.sent[0].recipients, harness.gateway.sent[0].message) == (
        "+15559876543",
        "Your table is ready",
    )
    await harness.telegram.wait_for(lambda: len(harness.topics()) == 1)
    [topic] = harness.topics()
    assert topic.name == "+1 555-987-6543"
    await harness.telegram.wait_for(
        lambda: harness.posts(thread_id=topic.thread_id) == ["📤 Alice: Your table is ready"]
    )
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, command["message_id"]) == ["✍"]
    )
    # The customer answers: it lands in the same topic, and a reply there goes to them.
    await harness.sms("Thanks!", number="+15559876543")
    await harness.telegram.wait_for(lambda: len(harness.posts(thread_id=topic.thread_id)) == 2)
    assert len(harness.topics()) == 1


async def test_sms_command_with_a_bad_number_explains(harness: Harness) -> None:
    harness.telegram.user_message(GROUP, AGENT, "/sms 0470 hello")
    await harness.telegram.wait_for(
        lambda: any("not a phone number" in p for p in harness.posts(thread_id=None))
    )
    harness.telegram.user_message(GROUP, AGENT, "/sms")
    await harness.telegram.wait_for(
        lambda: any(p.startswith("Usage: /sms") for p in harness.posts(thread_id=None))
    )
    assert harness.gateway.sent == []


async def test_history_backfills_the_conversation_from_the_gateway(harness: Harness) -> None:
    harness.gateway.receive_sms(CUSTOMER, "an old message")
    thread = await topic_for(harness, "a new one")
    harness.telegram.user_message(GROUP, AGENT, "an answer", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    harness.telegram.user_message(GROUP, AGENT, "/history", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: any(p.startswith("📜 History") for p in harness.posts(thread_id=thread))
    )
    history = next(p for p in harness.posts(thread_id=thread) if p.startswith("📜"))
    assert "(3 messages)" in history
    lines = history.splitlines()[1:]
    assert [line[0] for line in lines] == ["←", "←", "→"]
    assert lines[0].endswith("an old message") and lines[2].endswith("an answer")
    assert len(harness.gateway.sent) == 1  # /history itself is never sent


async def test_history_outside_a_topic_explains_where_to_use_it(harness: Harness) -> None:
    harness.telegram.user_message(GROUP, AGENT, "/history")
    await harness.telegram.wait_for(
        lambda: any("inside a number's topic" in p for p in harness.posts(thread_id=None))
    )


async def test_edits_and_media_are_explained_not_sent(harness: Harness) -> None:
    thread = await topic_for(harness)
    reply = harness.telegram.user_message(GROUP, AGENT, "typo", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    harness.telegram.user_edit(GROUP, reply["message_id"], "fixed")
    harness.telegram.user_message(GROUP, AGENT, "look", thread_id=thread, photo=True)
    await harness.telegram.wait_for(
        lambda: (
            any("Edits are not sent" in p for p in harness.posts(thread_id=thread))
            and any("Only text" in p for p in harness.posts(thread_id=thread))
        )
    )
    assert [s.message for s in harness.gateway.sent] == ["typo"]


async def test_a_reply_to_a_short_code_is_refused(harness: Harness) -> None:
    thread = await topic_for(harness, "Code 1234", number="BANK")
    harness.telegram.user_message(GROUP, AGENT, "thanks", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: any("not a phone number" in p for p in harness.posts(thread_id=thread))
    )
    assert harness.gateway.sent == []


async def test_help(harness: Harness) -> None:
    harness.telegram.user_message(GROUP, STRANGER, "/help")
    await harness.telegram.wait_for(
        lambda: any("/sms <number> <text>" in p for p in harness.posts(thread_id=ANY_THREAD))
    )


async def forget(harness: Harness, table: str) -> None:
    """What a crash between Telegram accepting a post and our commit leaves: no mapping."""
    from sqlalchemy import text

    assert harness.bridge.store is not None
    async with harness.bridge.store.db.write() as conn:
        await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed table names


async def test_reply_in_our_topic_without_a_stored_mapping_still_reaches_the_number(
    harness: Harness,
) -> None:
    thread = await topic_for(harness, "hello", number="+15550003333")
    await forget(harness, "threads")
    harness.telegram.user_message(GROUP, AGENT, "answer anyway", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].recipients == "+15550003333"


async def test_a_topic_people_made_is_never_sent_to(harness: Harness) -> None:
    await topic_for(harness)
    thread = harness.telegram.create_topic_by_human(GROUP, "+1 555 000 4444")
    harness.telegram.user_message(GROUP, AGENT, "team notes", thread_id=thread)
    await harness.settled()
    assert harness.gateway.sent == []
