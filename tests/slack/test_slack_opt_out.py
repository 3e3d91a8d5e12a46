"""Opt-out, blocking and segment-aware replies in Slack threads, as on Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_support import AGENT_ID, CHANNEL, SlackHarness, start_slack, world

from connectors.chat.slack.fake import FakeSlack

CUSTOMER = "+15551234567"
STOPPED = "🚫 +1 555-123-4567 replied STOP: opted out; replies to it will not be sent."
STARTED = "✅ +1 555-123-4567 replied START: opted back in; replies are sent."
REFUSED = "💔 SMS not sent: this number opted out, so nothing was sent to it."


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


def sendsms_calls(bridge: SlackHarness) -> int:
    return sum(1 for r in bridge.gateway.requests if r.path == "/sendsms/")


async def test_stop_refuses_a_queued_reply_and_start_lifts_it(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(start_bridge, slack)
    ts = await bridge.thread_for()
    bridge.gateway.fail_next("/sendsms/", status=503, count=1000)  # the gateway is down
    queued = slack.user_message(CHANNEL, AGENT_ID, "queued before", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: sendsms_calls(bridge) >= 1)
    await bridge.sms(" Stop ")
    await slack.wait_for(lambda: STOPPED in bridge.thread(ts))
    down = sendsms_calls(bridge)
    bridge.gateway.clear_faults()  # and back
    await slack.wait_for(lambda: any(t.startswith(REFUSED) for t in bridge.thread(ts)), 15)
    await slack.wait_for(lambda: slack.reactions(CHANNEL, queued["ts"]) == ["x"])
    assert sendsms_calls(bridge) == down and bridge.gateway.sent == []

    await bridge.sms("START")
    await slack.wait_for(lambda: STARTED in bridge.thread(ts))
    slack.user_message(CHANNEL, AGENT_ID, "welcome back", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.settled()
    texts = bridge.thread(ts)
    assert texts.index(" Stop ") + 1 == texts.index(STOPPED)
    assert sum(t.startswith("💔") for t in texts) == 1


async def test_a_blocked_numbers_sms_is_not_posted_and_replies_are_refused(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(start_bridge, slack)
    ts = await bridge.thread_for()
    assert bridge.bridge.store is not None
    await bridge.bridge.store.contacts.set_blocked(CUSTOMER, True)
    await bridge.sms("let me in")
    slack.user_message(CHANNEL, AGENT_ID, "a reply", thread_ts=ts)
    await slack.wait_for(
        lambda: (
            "💔 SMS not sent: this number is blocked, so nothing was sent to it."
            in bridge.thread(ts)
        )
    )
    await bridge.settled()
    assert "let me in" not in bridge.thread(ts) and bridge.gateway.sent == []
    assert len(bridge.parents()) == 1


async def test_segments_refused_over_the_limit_confirmed_with_a_bang_and_counted_on_sent(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(start_bridge, slack, max_segments=1)
    ts = await bridge.thread_for()
    long = "Dear customer, " + "€" * 80  # 175 septets: 2 GSM-7 parts
    slack.user_message(CHANNEL, AGENT_ID, long, thread_ts=ts)
    await slack.wait_for(
        lambda: (
            "⚠️ Not sent: this reply is 2 SMS parts (GSM-7), over the limit of 1. "
            "Send it again starting with ! to send anyway." in bridge.thread(ts)
        )
    )
    assert bridge.gateway.sent == []
    confirmed = slack.user_message(CHANNEL, AGENT_ID, "!" + long, thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    assert bridge.gateway.sent[0].message == long
    hook = bridge.harness.signed_hook
    await bridge.gateway.deliver_status_v2(hook, bridge.gateway.sent[0].guid, "sms.sent")
    await slack.wait_for(lambda: slack.reactions(CHANNEL, confirmed["ts"]) == ["outbox_tray"])
    await slack.wait_for(lambda: "📤 sent as 2 SMS parts (GSM-7)" in bridge.thread(ts))
    await bridge.gateway.deliver_status_v2(
        hook, bridge.gateway.sent[0].guid, "sms.sent", event_id="again"
    )
    await bridge.settled()
    assert bridge.thread(ts).count("📤 sent as 2 SMS parts (GSM-7)") == 1
