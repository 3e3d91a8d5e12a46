"""One gateway mirrored into two chats: a reply from either goes out, the other sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import AGENT, CUSTOMER, GROUP, Harness, telegram_section

from bridge.delivery import IDLE_POLL
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram

ON_CALL = 222  # a person using the second bot in a private chat


@pytest.fixture
async def second_bot() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(
        "654321:OTHER-TOKEN", limits=FakeLimits.off(), bot_id=654321, bot_username="other_bot"
    ) as fake:
        fake.add_private(ON_CALL)
        yield fake
        assert fake.violations == [], fake.violations


@pytest.fixture
async def mirrored(
    second_bot: FakeTelegram, telegram: FakeTelegram, start_bridge: Callable[..., Any]
) -> Harness:
    # (second_bot first: fixtures stop in reverse, so the bridge stops before its fakes do)
    """The office gateway into the support forum (topics) and a private chat (headers)."""
    oncall = {
        **telegram_section(second_bot, "oncall"),
        "chat_id": ON_CALL,
        "allowed_user_ids": [ON_CALL],
    }
    harness: Harness = await start_bridge(
        chats=[telegram_section(telegram), oncall],
        routes=[
            {"gateway": "office", "chat": "support", "default": True},
            {"gateway": "office", "chat": "oncall"},
        ],
    )
    return harness


def texts(fake: FakeTelegram, chat: int, **kw: Any) -> list[str]:
    return [m.get("text") or "" for m in fake.sent_messages(chat, **kw)]


async def test_an_sms_reaches_both_chats_and_a_reply_from_either_is_mirrored_in_the_other(
    mirrored: Harness, second_bot: FakeTelegram
) -> None:
    tg = mirrored.telegram
    await mirrored.sms("Is the shop open?")
    await tg.wait_for(lambda: "Is the shop open?" in mirrored.posts())
    await second_bot.wait_for(lambda: len(texts(second_bot, ON_CALL)) == 1)
    assert texts(second_bot, ON_CALL) == ["📩 +1 555-123-4567\nIs the shop open?"]
    await mirrored.idle()
    thread = mirrored.topics()[0].thread_id

    # From the forum topic: the private chat sees who answered, from where, and to whom.
    tg.user_message(GROUP, AGENT, "Yes, until 6", thread_id=thread)
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 1)
    await second_bot.wait_for(lambda: len(texts(second_bot, ON_CALL)) == 2)
    assert texts(second_bot, ON_CALL)[1] == "📤 Alice via support → +1 555-123-4567: Yes, until 6"

    # From the private chat, by replying to the bridged SMS: the topic sees it.
    first = second_bot.sent_messages(ON_CALL)[0]
    second_bot.user_message(ON_CALL, ON_CALL, "Closed Sundays", reply_to=first["message_id"])
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 2)
    assert [s.message for s in mirrored.gateway.sent] == ["Yes, until 6", "Closed Sundays"]
    assert {s.recipients for s in mirrored.gateway.sent} == {CUSTOMER}
    await tg.wait_for(lambda: "📤 Alice via oncall: Closed Sundays" in mirrored.posts(thread))

    # The mirror shows the SMS's status like the original does.
    await mirrored.idle()
    echo = next(
        m for m in tg.sent_messages(GROUP) if m.get("text") == "📤 Alice via oncall: Closed Sundays"
    )
    await tg.wait_for(lambda: tg.reaction(GROUP, echo["message_id"]) != [])
    assert tg.violations == [] and second_bot.violations == []


async def test_a_note_in_a_thread_is_never_sent(
    mirrored: Harness, second_bot: FakeTelegram
) -> None:
    tg = mirrored.telegram
    await mirrored.sms("Can I return this?")
    await tg.wait_for(lambda: "Can I return this?" in mirrored.posts())
    await mirrored.idle()
    thread = mirrored.topics()[0].thread_id
    tg.user_message(GROUP, AGENT, "note: check the receipt first", thread_id=thread)
    tg.user_message(GROUP, AGENT, "NOTE: and ask Kim", thread_id=thread)
    tg.user_message(GROUP, AGENT, "Yes, within 30 days", thread_id=thread)
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 1)
    await mirrored.idle()
    assert [s.message for s in mirrored.gateway.sent] == ["Yes, within 30 days"]
    # Notes stay where they were written: no mirror, no notice; the real answer is mirrored.
    await second_bot.wait_for(lambda: len(texts(second_bot, ON_CALL)) == 2)
    assert texts(second_bot, ON_CALL)[1].endswith(": Yes, within 30 days")
    assert mirrored.posts(thread) == ["Can I return this?"]


async def test_an_echo_posted_after_its_sms_was_sent_shows_the_status_at_once(
    mirrored: Harness, second_bot: FakeTelegram
) -> None:
    tg = mirrored.telegram
    await mirrored.sms("Is the shop open?")
    await second_bot.wait_for(lambda: len(texts(second_bot, ON_CALL)) == 1)
    await mirrored.idle()
    # The forum refuses the echo's first post for a second, so the SMS is sent before the echo
    # exists: only the echo's own post can queue the status it shows.
    tg.fail_next("sendMessage", status=429, description="Too Many Requests", retry_after=1)
    first = second_bot.sent_messages(ON_CALL)[0]
    second_bot.user_message(ON_CALL, ON_CALL, "Closed Sundays", reply_to=first["message_id"])
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 1)
    echo_text = "📤 Alice via oncall: Closed Sundays"
    await tg.wait_for(lambda: echo_text in mirrored.posts())
    echo = next(m for m in tg.sent_messages(GROUP) if m.get("text") == echo_text)
    await tg.wait_for(lambda: tg.reaction(GROUP, echo["message_id"]) != [])
    posted = next(
        c.at
        for c in tg.calls
        if c.method == "sendMessage" and c.params.get("text") == echo_text and c.status == 200
    )
    reacted = next(
        c.at
        for c in tg.calls
        if c.method == "setMessageReaction" and c.params.get("message_id") == echo["message_id"]
    )
    # The status job wakes the forum's worker: it does not wait for the idle poll.
    assert reacted - posted < IDLE_POLL / 2


async def test_retry_from_both_chats_resends_the_failed_sms_once(
    mirrored: Harness, second_bot: FakeTelegram
) -> None:
    """Both chats show the failure; a /retry in each must not send it twice."""
    tg, gateway = mirrored.telegram, mirrored.gateway
    await mirrored.sms("Where is my parcel?")
    await second_bot.wait_for(lambda: len(texts(second_bot, ON_CALL)) == 1)
    await tg.wait_for(lambda: "Where is my parcel?" in mirrored.posts())
    await mirrored.idle()
    thread = mirrored.topics()[0].thread_id
    tg.user_message(GROUP, AGENT, "It left today", thread_id=thread)
    await gateway.wait_for(lambda: len(gateway.sent) == 1)
    await gateway.deliver_status_v2(
        mirrored.signed_hook, gateway.sent[0].guid, "sms.failed", reason="Busy"
    )
    await second_bot.wait_for(lambda: any("Busy" in t for t in texts(second_bot, ON_CALL)))

    topic_retry = tg.user_message(GROUP, AGENT, "/retry", thread_id=thread)
    await tg.wait_for(
        lambda: any(
            (m.get("reply_to_message") or {}).get("message_id") == topic_retry["message_id"]
            for m in tg.sent_messages(GROUP)
        )
    )
    first = second_bot.sent_messages(ON_CALL)[0]
    private_retry = second_bot.user_message(
        ON_CALL, ON_CALL, "/retry", reply_to=first["message_id"]
    )

    def answer() -> list[str]:
        return [
            m.get("text") or ""
            for m in second_bot.sent_messages(ON_CALL)
            if (m.get("reply_to_message") or {}).get("message_id") == private_retry["message_id"]
        ]

    await second_bot.wait_for(lambda: bool(answer()))
    assert answer() == ["That failed SMS was retried already; nothing was sent."]
    await mirrored.settled()
    assert [s.message for s in gateway.sent] == ["It left today", "It left today"]
