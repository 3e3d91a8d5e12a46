"""Smstools through the real bridge: SMS in (poll or webhook), a reply out, its delivery shown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from conftest import AGENT, CUSTOMER, GROUP, Harness, telegram_section

from bridge.app import Bridge
from bridge.testing.fake_harness import Started, bridge_config
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smstools.fake import INBOX_NUMBER, FakeSmstools

TOKEN = "smstools-hook-0123456789"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeSmstools]:
    async with FakeSmstools() as served:
        yield served


@pytest_asyncio.fixture
async def start(
    tmp_path: Path, fake: FakeSmstools, telegram: FakeTelegram
) -> AsyncIterator[Callable[..., Any]]:
    async with Started() as started:

        async def run(**gateway: Any) -> Harness[FakeSmstools]:
            polls = {"poll_interval": 0.2, "status_poll_interval": 0.2}
            section = fake.section("tools", sender="Shop", **polls) | gateway
            config = bridge_config(tmp_path, section, telegram_section(telegram))
            return Harness(await started(Bridge(config)), fake, telegram)

        yield run


async def reply_in_topic(
    fake: FakeSmstools, telegram: FakeTelegram, text: str, count: int
) -> tuple[int, int, str]:
    """An agent answers in the number's topic; (thread, message id, the vendor's message id)."""
    [topic] = [t for t in telegram.topics(GROUP) if not t.deleted]
    reply = telegram.user_message(GROUP, AGENT, text, thread_id=topic.thread_id)
    await fake.wait_for(lambda: len(fake.sent) == count)
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"])
    return topic.thread_id, reply["message_id"], fake.sent[-1].messageid


async def test_polled_sms_reply_and_polled_delivery(
    start: Callable[..., Any], fake: FakeSmstools, telegram: FakeTelegram
) -> None:
    harness = await start(receive="poll")
    fake.receive_sms(CUSTOMER, "Is my order ready?")
    await telegram.wait_for(lambda: "Is my order ready?" in harness.posts())
    [topic] = telegram.topics(GROUP)
    assert topic.name.endswith(CUSTOMER[-4:])

    _thread, message_id, messageid = await reply_in_topic(fake, telegram, "Yes, come by", 1)
    sent = fake.sent[0]
    assert (sent.to, sent.message) == (CUSTOMER.lstrip("+"), "Yes, come by")
    assert sent.sender == "+" + INBOX_NUMBER  # the number the customer wrote to
    assert sent.reference is not None
    assert sent.reference.isdigit()  # our outbox id

    fake.set_status(messageid, "DELIVERED")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, message_id) == ["👍"])
    assert any(r.path == f"/v1/conversation/{sent.to}" for r in fake.requests)
    assert telegram.violations == []


async def test_webhook_sms_reply_and_delivery_reports(
    start: Callable[..., Any], fake: FakeSmstools, telegram: FakeTelegram
) -> None:
    harness = await start(receive="webhook", webhook_token=TOKEN, status_poll_interval=3600)
    base = f"{harness.base}/webhooks/sms/tools"
    sms = fake.receive_sms(CUSTOMER, "Hello by webhook")
    refused = await fake.deliver_inbox_message(f"{base}/wrong-token-0123456789", sms)
    assert refused.status_code == 403
    assert TOKEN not in refused.text
    accepted = await fake.deliver_inbox_message(f"{base}/{TOKEN}", sms)
    assert accepted.status_code == 202, accepted.text
    await telegram.wait_for(lambda: "Hello by webhook" in harness.posts())
    assert len(telegram.topics(GROUP)) == 1

    thread, message_id, messageid = await reply_in_topic(fake, telegram, "Got it", 1)
    delivered = await fake.deliver_delivery_report(f"{base}/{TOKEN}", messageid, "DELIVERED")
    assert delivered.status_code == 202
    await telegram.wait_for(lambda: telegram.reaction(GROUP, message_id) == ["👍"])
    again = await fake.deliver_delivery_report(f"{base}/{TOKEN}", messageid, "DELIVERED")
    assert again.status_code == 200  # the same report twice: a duplicate
    late = await fake.deliver_delivery_report(f"{base}/{TOKEN}", messageid, "SUBMITTED")
    assert late.status_code == 202  # news, though older than what we show

    _, second_id, second = await reply_in_topic(fake, telegram, "Still there?", 2)
    await fake.deliver_delivery_report(f"{base}/{TOKEN}", second, "REJECTED", detail=10)
    notice = "💔 SMS not sent: rejected by the operator: receiver number invalid or unknown"
    await telegram.wait_for(lambda: notice in harness.posts(thread))
    assert telegram.reaction(GROUP, second_id) == ["💔"]
    # The late "submitted" never moved the first answer back.
    assert telegram.reaction(GROUP, message_id) == ["👍"]
