"""Routes with rules on Slack: a fixed thread, alerts only, collapse, drop, first match."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_support import AGENT_ID, CHANNEL, SlackHarness, start_slack, world

from bridge.replies import ALERTS_ONLY, GATHERING
from connectors.chat.slack.events import escape
from connectors.chat.slack.fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


def parent(bridge: SlackHarness, title: str) -> str:
    [ts] = [p["ts"] for p in bridge.parents() if p.get("text") == title]
    return ts


async def test_codes_gather_in_one_thread_and_the_rest_get_a_thread_per_number(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(
        start_bridge,
        slack,
        routes=[
            {"match": {"text": "re:(?i)\\bcode\\b"}, "chat": "team", "thread": "Codes"},
            {"gateway": "office", "chat": "team"},
        ],
    )
    await bridge.sms("Your code is 123456", number="BANK")
    await bridge.sms("Another code: 654321", number="+15550001111")
    await bridge.sms("hello there")
    await bridge.idle()
    codes = parent(bridge, "Codes")
    assert [t.split("\n", 1)[1] for t in bridge.thread(codes)] == [
        "Your code is 123456",
        "Another code: 654321",
    ]
    assert bridge.thread(parent(bridge, "+1 555-123-4567")) == ["hello there"]
    assert len(bridge.parents()) == 2

    # A message in the gathering thread answers nobody: it says how to answer instead.
    slack.user_message(CHANNEL, AGENT_ID, "who is this?", thread_ts=codes)
    await bridge.settled()
    assert bridge.thread(codes)[-1] == escape(GATHERING)  # as Slack stores < and >
    assert bridge.gateway.sent == []


async def test_an_alerts_only_route_refuses_replies_on_slack(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(
        start_bridge, slack, routes=[{"gateway": "office", "chat": "team", "replies": False}]
    )
    ts = await bridge.thread_for("db-1 is down")
    slack.user_message(CHANNEL, AGENT_ID, "on it", thread_ts=ts)
    await bridge.settled()
    assert bridge.gateway.sent == []
    assert bridge.thread(ts)[-1] == ALERTS_ONLY


async def test_repeats_collapse_into_one_edited_post_on_slack(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(
        start_bridge,
        slack,
        routes=[{"gateway": "office", "chat": "team", "collapse": "10m"}],
    )
    ts = await bridge.thread_for("battery low")
    await bridge.sms("battery low")
    await bridge.sms("battery low")
    await bridge.idle()
    assert bridge.thread(ts) == ["battery low\n(×3)"]
    assert slack.count("chat.update") == 2


async def test_dropped_senders_never_reach_slack(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(
        start_bridge,
        slack,
        routes=[
            {"match": {"from": ["PROMO", "re:^WIN"]}, "action": "drop"},
            {"gateway": "office", "chat": "team"},
        ],
    )
    await asyncio.gather(
        bridge.sms("50% off!", number="PROMO"), bridge.sms("you won", number="WINNER")
    )
    await bridge.thread_for("a real question")
    await bridge.idle()
    assert [p["text"] for p in bridge.parents()] == ["+1 555-123-4567"]
