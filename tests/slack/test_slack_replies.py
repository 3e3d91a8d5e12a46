"""Answering in Slack: replies become SMS; notes, strangers, bots, edits and /sms; status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_support import (
    AGENT_ID,
    CHANNEL,
    STRANGER_ID,
    SlackHarness,
    start_slack,
    world,
)

from connectors.chat.slack.fake import FakeSlack

CUSTOMER = "+15551234567"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


def sent(bridge: SlackHarness) -> list[str]:
    return [s.message for s in bridge.gateway.sent]


async def test_a_reply_in_the_thread_is_sent_and_shows_its_status(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    reply = slack.user_message(
        CHANNEL, AGENT_ID, "On my way &amp; <https://x.io|x.io>", thread_ts=ts
    )
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    sms = bridge.gateway.sent[0]
    assert (sms.recipients, sms.message) == (CUSTOMER, "On my way & x.io")
    await slack.wait_for(
        lambda: slack.reactions(CHANNEL, reply["ts"]) == ["hourglass_flowing_sand"]
    )
    hook = bridge.harness.signed_hook
    await bridge.gateway.deliver_status_v2(hook, sms.guid, "sms.sent")
    await slack.wait_for(lambda: slack.reactions(CHANNEL, reply["ts"]) == ["outbox_tray"])


async def test_a_failed_sms_gets_a_cross_and_the_reason_in_the_thread(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    reply = slack.user_message(CHANNEL, AGENT_ID, "hello?", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    guid = bridge.gateway.sent[0].guid
    await bridge.gateway.deliver_status_v2(
        bridge.harness.signed_hook, guid, "sms.failed", reason="No network coverage"
    )
    await slack.wait_for(lambda: slack.reactions(CHANNEL, reply["ts"]) == ["x"])
    await slack.wait_for(lambda: "💔 SMS not sent: No network coverage" in bridge.thread(ts))


async def test_notes_strangers_bots_and_chatter_are_never_sent(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    slack.user_message(CHANNEL, AGENT_ID, "note: they called yesterday", thread_ts=ts)
    slack.user_message(CHANNEL, AGENT_ID, "Note: ask about the invoice", thread_ts=ts)
    slack.user_message(CHANNEL, STRANGER_ID, "let me answer", thread_ts=ts)
    slack.other_bot_message(CHANNEL, "deploy finished", thread_ts=ts)
    slack.user_message(CHANNEL, "USLACKBOT", "Reminder: stand-up", thread_ts=ts)  # Slack's own
    slack.user_message(CHANNEL, AGENT_ID, "lunch anyone?")
    slack.user_message(CHANNEL, AGENT_ID, "the real answer", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await slack.wait_for(lambda: len(slack.ephemerals) == 1)
    await bridge.settled()
    assert sent(bridge) == ["the real answer"]
    [refusal] = slack.ephemerals
    assert (refusal.user, refusal.thread_ts) == (STRANGER_ID, ts)
    assert "not allowed" in refusal.text
    assert all("not allowed" not in t for t in bridge.thread(ts))  # nobody else sees it


async def test_the_bridge_never_answers_itself(bridge: SlackHarness, slack: FakeSlack) -> None:
    ts = await bridge.thread_for("first")
    slack.user_message(CHANNEL, AGENT_ID, "answer", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.sms("second")
    await slack.wait_for(lambda: bridge.thread(ts)[-1] == "second")
    await bridge.settled()
    # Every post of ours came back as a message event, and bolt's filter or ours dropped it.
    echoes = [d for d in slack.deliveries if d.payload.get("event", {}).get("user") == "U0SMSBOT"]
    assert len(echoes) >= 3
    assert all(d.attempts == [200] for d in slack.deliveries)
    assert sent(bridge) == ["answer"]


async def test_an_edit_is_explained_and_not_sent_again(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    reply = slack.user_message(CHANNEL, AGENT_ID, "typo", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    slack.user_edit(CHANNEL, reply["ts"], "fixed")
    await slack.wait_for(lambda: any("Edits are not sent" in t for t in bridge.thread(ts)))
    await bridge.settled()
    assert sent(bridge) == ["typo"]


async def test_the_sms_slash_command_starts_a_conversation(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    slack.slash_command(CHANNEL, AGENT_ID, "/sms", "+1 555 987 6543 Your payload is ready")
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    sms = bridge.gateway.sent[0]
    assert (sms.recipients, sms.message) == ("+15559876543", "Your payload is ready")
    await slack.wait_for(lambda: len(bridge.parents()) == 1)
    [parent] = bridge.parents()
    assert parent["text"] == "+1 555-987-6543"
    await slack.wait_for(
        lambda: bridge.thread(parent["ts"]) == ["📤 Alex Agent: Your payload is ready"]
    )
    [command] = [d for d in slack.deliveries if d.kind == "slash_commands"]
    assert command.attempts == [200]
    # The customer answers: same thread.
    await bridge.sms("Thanks!", number="+15559876543")
    await slack.wait_for(lambda: len(bridge.thread(parent["ts"])) == 2)
    assert len(bridge.parents()) == 1


async def test_slash_command_mistakes_and_refusals_are_told_privately(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    slack.slash_command(CHANNEL, AGENT_ID, "/sms", "0470 hello")
    slack.slash_command(CHANNEL, STRANGER_ID, "/sms", "+1 555 987 6543 hi")
    await slack.wait_for(lambda: len(slack.ephemerals) == 2)
    by_user = {e.user: e.text for e in slack.ephemerals}
    assert "not a phone number" in by_user[AGENT_ID]
    assert "not allowed" in by_user[STRANGER_ID]
    await slack.wait_for(
        lambda: len([d for d in slack.deliveries if d.kind == "slash_commands"]) == 2
    )
    await bridge.settled()
    assert bridge.gateway.sent == []
    assert slack.texts(CHANNEL) == []  # nothing said in public


async def test_deleting_a_reply_that_went_out_says_it_cannot_be_unsent(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    reply = slack.user_message(CHANNEL, AGENT_ID, "wrong number, sorry", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.settled()
    slack.user_delete(CHANNEL, reply["ts"])
    notice = "🗑 Deleting here does not unsend: the SMS to +1 555-123-4567 had already gone"
    await slack.wait_for(lambda: any(t.startswith(notice) for t in bridge.thread(ts)))
    await bridge.settled()
    assert sent(bridge) == ["wrong number, sorry"]
    assert len(bridge.parents()) == 1  # a reply deleted is not the thread deleted
