"""Slack and Telegram mirroring one gateway: an SMS in both, a reply from either goes out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import AGENT, CUSTOMER, GROUP, telegram_section
from slack_support import (
    AGENT_ID,
    CHANNEL,
    SlackHarness,
    slack_section,
    start_slack,
    world,
)

from connectors.chat.slack.fake import FakeSlack
from connectors.chat.telegram.fake import FakeTelegram


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def mirrored(
    slack: FakeSlack, telegram: FakeTelegram, start_bridge: Callable[..., Any]
) -> SlackHarness:
    return await start_slack(
        start_bridge,
        slack,
        chats=[telegram_section(telegram), slack_section(slack)],
        routes=[
            {"gateway": "office", "chat": "support", "default": True},
            {"gateway": "office", "chat": "team"},
        ],
    )


async def test_slack_and_telegram_mirror_the_same_conversation(
    mirrored: SlackHarness, slack: FakeSlack, telegram: FakeTelegram
) -> None:
    tg = mirrored.harness
    ts = await mirrored.thread_for("Is the shop open?")
    await telegram.wait_for(lambda: "Is the shop open?" in tg.posts())
    topic = tg.topics()[0].thread_id

    # From Slack: the SMS goes out and the Telegram topic sees who sent it, from where.
    reply = slack.user_message(CHANNEL, AGENT_ID, "Yes, until 6", thread_ts=ts)
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 1)
    await telegram.wait_for(lambda: "📤 Alex Agent via team: Yes, until 6" in tg.posts(topic))

    # From Telegram: the Slack thread sees it.
    telegram.user_message(GROUP, AGENT, "Closed Sundays", thread_id=topic)
    await mirrored.gateway.wait_for(lambda: len(mirrored.gateway.sent) == 2)
    await slack.wait_for(lambda: "📤 Alice via support: Closed Sundays" in mirrored.thread(ts))
    assert [s.message for s in mirrored.gateway.sent] == ["Yes, until 6", "Closed Sundays"]
    assert {s.recipients for s in mirrored.gateway.sent} == {CUSTOMER}

    # The mirror in Slack carries the SMS's status, like the original in Slack does.
    await mirrored.settled()
    echo = next(p for p in slack.posts(CHANNEL, ts) if p["text"].startswith("📤 Alice"))
    await slack.wait_for(lambda: slack.reactions(CHANNEL, echo["ts"]) == ["hourglass_flowing_sand"])
    assert slack.reactions(CHANNEL, reply["ts"]) == ["hourglass_flowing_sand"]
    assert telegram.violations == []
