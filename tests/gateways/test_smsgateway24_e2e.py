"""SmsGateway24 end to end through the real bridge: SMS in, topic, reply out, delivered reaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import AGENT, CUSTOMER, GROUP, Harness, telegram_section

from bridge.testing.fake_harness import bridge_config, running_bridge
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsgateway24.fake import FakeSmsGateway24

HOOK_TOKEN = "sg24-e2e-hook-token-0123456789"


@asynccontextmanager
async def running(
    tmp_path: Path, telegram: FakeTelegram, **gateway: Any
) -> AsyncIterator[tuple[Harness[FakeSmsGateway24], FakeSmsGateway24]]:
    async with FakeSmsGateway24() as fake:
        # Device 261 answers from SIM 2 unless its conversation says otherwise.
        devices = [{"device_id": 260}, {"device_id": 261, "sim": 2}]
        polls = {"poll_interval": 0.2, "status_poll_interval": 0.2}
        section = fake.section("sg24", devices=devices, webhook_token=HOOK_TOKEN, **polls) | gateway
        config = bridge_config(tmp_path, section, telegram_section(telegram))
        async with running_bridge(config) as bridge:
            yield Harness(bridge, fake, telegram), fake


def reaction(telegram: FakeTelegram, message_id: int) -> Callable[[], list[str]]:
    return lambda: telegram.reaction(GROUP, message_id)


async def reply_in_topic(
    harness: Harness[FakeSmsGateway24], fake: FakeSmsGateway24, text: str
) -> int:
    """Once the SMS is in its topic, the agent answers there; returns the answer's message id."""
    await harness.telegram.wait_for(lambda: any("Is my order ready?" in p for p in harness.posts()))
    await harness.idle()
    (topic,) = harness.topics()
    answer = harness.telegram.user_message(GROUP, AGENT, text, thread_id=topic.thread_id)
    await fake.wait_for(lambda: len(fake.sent) == 1)
    message_id: int = answer["message_id"]
    return message_id


async def test_polled_sms_to_topic_reply_and_polled_delivery(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    async with running(tmp_path, telegram, receive="poll") as (harness, fake):
        # Received on device 261's first SIM: the answer must leave the same way, not from
        # that device's default SIM 2.
        fake.receive_sms(CUSTOMER, "Is my order ready?", device_id=261, sim=0)
        answer = await reply_in_topic(harness, fake, "Yes, come by at 5")
        sent = fake.sent[0]
        assert (sent.sendto, sent.body, sent.device_id, sent.sim) == (
            CUSTOMER,
            "Yes, come by at 5",
            261,
            0,
        )
        assert sent.customerid is not None  # our outbox id, for reconciliation
        await telegram.wait_for(lambda: reaction(telegram, answer)() == ["✍"])
        fake.set_status(sent.id, 6)
        await telegram.wait_for(lambda: reaction(telegram, answer)() == ["👌"])
        fake.set_status(sent.id, 7)
        await telegram.wait_for(lambda: reaction(telegram, answer)() == ["👍"])
        assert fake.logins == 1
        assert telegram.violations == []


async def test_webhook_sms_to_topic_reply_and_delivery_webhooks_out_of_order(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    async with running(tmp_path, telegram, receive="webhook", status_poll_interval=3600) as (
        harness,
        fake,
    ):
        hook = f"{harness.base}/webhooks/sms/sg24/{HOOK_TOKEN}"
        received = fake.receive_sms(CUSTOMER, "Is my order ready?", device_id=260)
        refused = await fake.deliver_incoming(
            f"{harness.base}/webhooks/sms/sg24/wrong-token-0123456789", received
        )
        assert refused.status_code == 403
        assert (await fake.deliver_incoming(hook, received)).status_code == 202
        assert (await fake.deliver_incoming(hook, received)).status_code == 200  # a redelivery
        answer = await reply_in_topic(harness, fake, "Yes")
        sent = fake.sent[0]
        assert (sent.device_id, sent.sim) == (260, 0)
        # The receipt overtakes the "sent" report; the late one must not undo it.
        assert (await fake.deliver_status(hook, sent.id, 7)).status_code == 202
        await telegram.wait_for(lambda: reaction(telegram, answer)() == ["👍"])
        late = await fake.deliver_status(hook, sent.id, 6)
        assert late.status_code in (200, 202)
        await harness.idle()  # whatever the late event queued for the chat has run
        assert reaction(telegram, answer)() == ["👍"]
        assert len(harness.topics()) == 1
        assert [p for p in harness.posts() if "Is my order ready?" in p][1:] == []
