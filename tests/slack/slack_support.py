"""What the Slack tests share: the fake's channel and people, a bridge config, a harness."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from conftest import Harness

from bridge.models import Attachment, ChatMessage, InboundSms, WebhookEvents
from connectors.chat.slack.client import SlackChat, SlackConfig
from connectors.chat.slack.fake import FakeSlack

CHANNEL = "C0SUPPORT"
AGENT_ID = "U0AGENT"  # on the allow-list
STRANGER_ID = "U0STRANGER"  # in the channel, not on the allow-list
FAST = {"channel": {"messages": 1000, "seconds": 1}, "reactions": {"messages": 1000, "seconds": 1}}


def slack_world(fake: FakeSlack) -> None:
    fake.add_channel(CHANNEL, "support")
    fake.add_user(AGENT_ID, "Alex Agent")
    fake.add_user(STRANGER_ID, "Sam Stranger")


@contextlib.asynccontextmanager
async def world(**options: Any) -> AsyncIterator[FakeSlack]:
    """A running fake Slack with the channel and people; on exit, nothing the specs forbid."""
    async with FakeSlack(**options) as fake:
        slack_world(fake)
        yield fake
        assert fake.violations == [], fake.violations


def slack_section(fake: FakeSlack, name: str = "team", **overrides: Any) -> dict[str, Any]:
    """A Slack chat on the fake over the Events API, with pacing out of the way."""
    section: dict[str, Any] = {
        "name": name,
        "type": "slack",
        "bot_token": fake.bot_token,
        "signing_secret": fake.signing_secret,
        "channel": CHANNEL,
        "base_url": fake.api_url,
        "allowed_user_ids": [AGENT_ID],
        "pacing": FAST,
    }
    section.update(overrides)
    return section


class SlackHarness:
    """A running bridge (SMSMobileAPI gateway -> Slack chat) and the fake Slack it posts to."""

    def __init__(self, harness: Harness, slack: FakeSlack) -> None:
        self.harness = harness
        self.bridge = harness.bridge
        self.gateway = harness.gateway
        self.slack = slack

    @property
    def events_url(self) -> str:
        return f"{self.harness.base}/webhooks/slack/team"

    async def sms(self, text: str, **kw: Any) -> Any:
        return await self.harness.sms(text, **kw)

    def parents(self) -> list[dict[str, Any]]:
        return self.slack.parents(CHANNEL)

    def thread(self, parent_ts: str) -> list[str]:
        return self.slack.texts(CHANNEL, parent_ts)

    async def idle(self) -> None:
        await self.harness.idle()

    async def settled(self) -> None:
        """Until the fake has handed every event to the bridge and the bridge posted all."""
        await self.slack.wait_for(lambda: not self.slack.pending())
        await self.harness.idle()
        await self.slack.wait_for(lambda: not self.slack.pending())

    async def mms(
        self, picture: bytes, text: str = "see the photo", name: str = "photo.png"
    ) -> None:
        """An MMS image from the customer, as an MMS-capable gateway's webhook hands it to the
        router (SMSMobileAPI sends no media)."""
        assert self.bridge.router is not None
        mms = InboundSms(
            gateway="office",
            provider_id=f"mms-{len(picture)}-{name}",
            sender="+15551234567",
            text=text,
            received_at=datetime.now(UTC),
            attachments=(Attachment("image/png", name, data=picture),),
        )
        await self.bridge.router.ingest("office", WebhookEvents(inbound=(mms,)))

    async def thread_for(self, text: str = "hi", number: str = "+15551234567", **kw: Any) -> str:
        """The number's thread, once its SMS shows in it (as a person would see it)."""
        await self.sms(text, number=number, **kw)
        await self.slack.wait_for(lambda: any(text in self.thread(p["ts"]) for p in self.parents()))
        await self.harness.idle()
        return next(p["ts"] for p in self.parents() if text in self.thread(p["ts"]))


async def start_slack(
    start_bridge: Callable[..., Any],
    slack: FakeSlack,
    *,
    chat: dict[str, Any] | None = None,
    **overrides: Any,
) -> SlackHarness:
    """A bridge whose only chat is Slack; the fake sends the app's events to its endpoint."""
    overrides.setdefault("chats", [chat or slack_section(slack)])
    overrides.setdefault("routes", [{"gateway": "office", "chat": "team"}])
    harness: Harness = await start_bridge(**overrides)
    running = SlackHarness(harness, slack)
    if not any(c.get("app_token") for c in overrides["chats"] if c.get("type") == "slack"):
        slack.request_url = running.events_url  # what one enters as the app's Request URL
    return running


@contextlib.asynccontextmanager
async def started_chat(fake: FakeSlack, seen: list[ChatMessage]) -> AsyncIterator[SlackChat]:
    """The connector alone on the fake, with what it hands the core collected in ``seen``."""
    platform = SlackChat(SlackConfig.model_validate(slack_section(fake)), None)

    async def collect(message: ChatMessage) -> None:
        seen.append(message)

    await platform.start(collect)
    try:
        yield platform
    finally:
        await platform.stop()
