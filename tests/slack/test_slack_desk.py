"""Thread commands on Slack, which has no slash commands in threads: ``!close`` or a mention of
the bot (``@SMS close``) in the number's thread; answers are ephemeral, changes announced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from slack_support import AGENT_ID, CHANNEL, STRANGER_ID, SlackHarness, start_slack, world

from bridge.replies import DONE
from bridge.store.schema import outbox, threads
from connectors.chat.slack.fake import FakeSlack

CUSTOMER = "+15551234567"
BOT = "<@U0SMSBOT>"  # the fake's bot user: how Slack writes a mention of it
TITLE = "Alice Smith (+1 555-123-4567)"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


async def ask(
    bridge: SlackHarness, slack: FakeSlack, text: str, ts: str, user: str = AGENT_ID
) -> str:
    """Write ``text`` in the thread; the ephemeral answer its author alone sees."""
    before = len(slack.ephemerals)
    slack.user_message(CHANNEL, user, text, thread_ts=ts)
    await slack.wait_for(lambda: len(slack.ephemerals) > before)
    answer = slack.ephemerals[before]
    assert (answer.user, answer.thread_ts) == (user, ts)
    return answer.text


async def column(bridge: SlackHarness, query: Any) -> list[Any]:
    assert bridge.bridge.store is not None
    async with bridge.bridge.store.db.read() as conn:
        return list((await conn.execute(query)).scalars())


@pytest.mark.parametrize("form", ["!name Alice Smith", f"{BOT} name Alice Smith"])
async def test_name_retitles_the_thread(bridge: SlackHarness, slack: FakeSlack, form: str) -> None:
    ts = await bridge.thread_for(alias="Gateway Guess")
    assert bridge.parents()[0]["text"] == "Gateway Guess (+1 555-123-4567)"
    assert await ask(bridge, slack, form, ts) == DONE
    await slack.wait_for(lambda: bridge.parents()[0]["text"] == TITLE)
    await slack.wait_for(lambda: any("named Alice Smith" in t for t in bridge.thread(ts)))
    assert await ask(bridge, slack, "!name", ts) == "+1 555-123-4567 is named Alice Smith."
    # The gateway's alias changes: the person's name stays.
    await bridge.sms("me again", alias="Another Guess")
    await slack.wait_for(lambda: "me again" in bridge.thread(ts))
    await bridge.settled()
    assert bridge.parents()[0]["text"] == TITLE
    assert bridge.gateway.sent == []


@pytest.mark.parametrize("form", ["!status", f"{BOT} status", f"{BOT}  STATUS "])
async def test_status_is_answered_privately(
    bridge: SlackHarness, slack: FakeSlack, form: str
) -> None:
    ts = await bridge.thread_for("Where is it?")
    card = await ask(bridge, slack, form, ts)
    assert card.splitlines()[0] == "📇 +1 555-123-4567"
    assert "Last in: " in card and "“Where is it?”" in card
    assert "Failed sends: 0" in card
    await bridge.settled()
    assert bridge.thread(ts) == ["Where is it?"]  # nobody else sees it
    assert slack.count("chat.postEphemeral") >= 1
    assert bridge.gateway.sent == []


async def test_close_is_announced_and_an_sms_reopens(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    assert await ask(bridge, slack, "!close", ts) == DONE
    closed = "🔒 Alex Agent closed this thread. The next SMS from this number reopens it."
    await slack.wait_for(lambda: closed in bridge.thread(ts))
    assert await column(bridge, sa.select(threads.c.closed_at)) != [None]
    assert await ask(bridge, slack, f"{BOT} close", ts) == "This thread is closed already."
    await bridge.sms("hello again")
    await slack.wait_for(lambda: "hello again" in bridge.thread(ts))
    assert await column(bridge, sa.select(threads.c.closed_at)) == [None]
    assert await ask(bridge, slack, "!reopen", ts) == "This thread is reopened already."
    await bridge.settled()
    assert bridge.gateway.sent == []


async def test_block_and_unblock_by_mention(bridge: SlackHarness, slack: FakeSlack) -> None:
    ts = await bridge.thread_for()
    assert await ask(bridge, slack, f"{BOT} block", ts) == DONE
    await slack.wait_for(
        lambda: any(t.startswith("🚫 Alex Agent blocked") for t in bridge.thread(ts))
    )
    assert bridge.bridge.store is not None
    assert (await bridge.bridge.store.contacts.get(CUSTOMER)).blocked
    assert await ask(bridge, slack, "!unblock", ts) == DONE
    assert not (await bridge.bridge.store.contacts.get(CUSTOMER)).blocked


async def test_retry_resends_once(bridge: SlackHarness, slack: FakeSlack) -> None:
    ts = await bridge.thread_for()
    slack.user_message(CHANNEL, AGENT_ID, "Parcel at the door", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.gateway.deliver_status_v2(
        bridge.harness.signed_hook, bridge.gateway.sent[0].guid, "sms.failed", reason="Busy"
    )
    await slack.wait_for(lambda: any("Busy" in t for t in bridge.thread(ts)))
    assert await ask(bridge, slack, "!retry", ts) == "🔁 Sending again: “Parcel at the door”"
    assert await ask(bridge, slack, f"{BOT} retry", ts) == (
        "That failed SMS was retried already; nothing was sent."
    )
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 2)
    await bridge.settled()
    assert [s.message for s in bridge.gateway.sent] == ["Parcel at the door"] * 2
    assert await column(bridge, sa.select(outbox.c.purpose).order_by(outbox.c.id)) == [
        "reply",
        "retry",
    ]
    assert "📤 Alex Agent (retry): Parcel at the door" in bridge.thread(ts)


async def test_history_in_a_slack_thread(bridge: SlackHarness, slack: FakeSlack) -> None:
    bridge.gateway.receive_sms(CUSTOMER, "an old message")
    ts = await bridge.thread_for("a new one")
    slack.user_message(CHANNEL, AGENT_ID, "!history", thread_ts=ts)
    await slack.wait_for(lambda: any(t.startswith("📜 History") for t in bridge.thread(ts)))
    history = next(t for t in bridge.thread(ts) if t.startswith("📜"))
    assert "(2 messages)" in history and "an old message" in history
    assert bridge.gateway.sent == []


async def test_unknown_commands_get_help_and_other_bang_text_is_a_reply(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    answer = await ask(bridge, slack, f"{BOT} frobnicate", ts)
    assert answer.startswith("Unknown command /frobnicate.")
    assert "!status" in answer and "/close, /reopen" in answer
    assert (await ask(bridge, slack, f"{BOT}", ts)).startswith("Each phone number")
    # Not a command word, or a word that takes no arguments given some: text for the customer.
    slack.user_message(CHANNEL, AGENT_ID, "!frobnicate", thread_ts=ts)
    slack.user_message(CHANNEL, AGENT_ID, "!close the door please", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 2)
    await bridge.settled()
    assert [s.message.lstrip("!") for s in bridge.gateway.sent] == [
        "frobnicate",
        "close the door please",
    ]
    assert await column(bridge, sa.select(threads.c.closed_at)) == [None]


async def test_a_mention_of_the_bot_never_becomes_an_sms(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    """Whatever follows a mention was said to the bot, not the customer: punctuation after
    a word is forgiven, anything else gets the help."""
    ts = await bridge.thread_for()
    assert (await ask(bridge, slack, f"{BOT} status?", ts)).startswith("📇 ")
    assert (await ask(bridge, slack, f"{BOT}: status", ts)).startswith("📇 ")
    assert (await ask(bridge, slack, f"{BOT} 3 parts?", ts)).startswith("Each phone number")
    assert (await ask(bridge, slack, f"{BOT} what's this", ts)).startswith("Each phone number")
    await bridge.settled()
    assert bridge.gateway.sent == []


async def test_a_command_outside_a_thread_says_how_to_give_it_in_one(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    """Slack has no slash commands in threads: the hint names the form that works there."""
    slack.user_message(CHANNEL, AGENT_ID, "!status")
    await slack.wait_for(lambda: len(slack.ephemerals) == 1)
    assert slack.ephemerals[0].text == "Use !status in a number's thread."


async def test_strangers_may_look_but_not_change(bridge: SlackHarness, slack: FakeSlack) -> None:
    ts = await bridge.thread_for()
    for text in ("!close", f"{BOT} block", "!retry", "!name Mallory"):
        assert "not allowed" in await ask(bridge, slack, text, ts, user=STRANGER_ID)
    assert (await ask(bridge, slack, "!status", ts, user=STRANGER_ID)).startswith("📇")
    await bridge.settled()
    assert bridge.parents()[0]["text"] == "+1 555-123-4567"
    assert await column(bridge, sa.select(threads.c.closed_at)) == [None]
    assert bridge.thread(ts) == ["hi"]
