"""SMSGate through the real bridge: SMS in, a topic, a reply out, delivered on the reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import AGENT, CUSTOMER, GROUP, Harness, telegram_section

from bridge.testing.fake_harness import bridge_config, free_port, running_bridge
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsgate.fake import FakeSmsGate

SPEC = json.loads(
    (
        Path(__file__).parent / "payloads" / "smsgate" / "android-sms-gateway.swagger.json"
    ).read_text()
)


@asynccontextmanager
async def running(
    tmp_path: Path, fake: FakeSmsGate, telegram: FakeTelegram, server: dict[str, Any], **gw: Any
) -> AsyncIterator[Harness[FakeSmsGate]]:
    gateway = fake.section("office", region="US") | gw
    config = bridge_config(tmp_path, gateway, telegram_section(telegram), **server)
    async with running_bridge(config) as bridge:
        yield Harness(bridge, fake, telegram)


async def reply_in_topic(
    harness: Harness[FakeSmsGate], fake: FakeSmsGate, text: str
) -> tuple[int, str]:
    """The agent answers in the number's topic; (the reply's message id, the vendor's id)."""
    await harness.idle()
    [topic] = harness.topics()
    reply = harness.telegram.user_message(GROUP, AGENT, text, thread_id=topic.thread_id)
    await fake.wait_for(lambda: len(fake.messages) == 1)
    [message] = fake.messages.values()
    assert (message.phone_numbers, message.text) == ([CUSTOMER], text)
    return reply["message_id"], message.id


def reaction(harness: Harness[FakeSmsGate], message_id: int) -> list[str]:
    return harness.telegram.reaction(GROUP, message_id)


async def test_webhook_round_trip_in_cloud_mode(tmp_path: Path, telegram: FakeTelegram) -> None:
    port = free_port()
    server = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    async with (
        FakeSmsGate("cloud", spec=SPEC) as fake,
        running(
            tmp_path,
            fake,
            telegram,
            server,
            receive="webhook",
            register_webhooks=True,
            status_poll_interval=3600,
        ) as harness,
    ):
        assert len(fake.webhooks) == 5  # registered at start, one per event
        row = fake.receive_sms("(555) 123-4567", "Is my order ready?", sim=2)
        [answer] = await fake.deliver_received(row, event_id="evt-in-1")
        assert answer.status_code == 202
        [again] = await fake.deliver_received(row, event_id="evt-in-1")  # redelivered
        assert again.status_code == 200
        await telegram.wait_for(lambda: "Is my order ready?" in harness.posts())
        assert harness.topics()[0].name.endswith("4567")

        message_id, vendor_id = await reply_in_topic(harness, fake, "Yes, come by at 5")
        assert fake.messages[vendor_id].sim == 2  # the reply leaves by the SIM it came in on
        await telegram.wait_for(lambda: reaction(harness, message_id) == ["✍"])
        await fake.report(vendor_id, "sms:sent")
        await telegram.wait_for(lambda: reaction(harness, message_id) == ["👌"])
        await fake.report(vendor_id, "sms:delivered")
        await telegram.wait_for(lambda: reaction(harness, message_id) == ["👍"])
        assert telegram.violations == []


async def test_polling_round_trip_in_local_mode(tmp_path: Path, telegram: FakeTelegram) -> None:
    async with (
        FakeSmsGate("local", spec=SPEC) as fake,
        running(
            tmp_path,
            fake,
            telegram,
            {},
            receive="poll",
            poll_interval=0.2,
            status_poll_interval=0.2,
        ) as harness,
    ):
        fake.receive_sms(CUSTOMER, "Are you open today?")
        await telegram.wait_for(lambda: "Are you open today?" in harness.posts())
        message_id, vendor_id = await reply_in_topic(harness, fake, "Until 6 pm")
        await telegram.wait_for(lambda: reaction(harness, message_id) == ["✍"])
        fake.set_state(vendor_id, "Delivered")
        await telegram.wait_for(lambda: reaction(harness, message_id) == ["👍"])
        assert any(r.path == f"/messages/{vendor_id}" for r in fake.requests)
        assert len(harness.posts()) == 1  # polled again and again, posted once
