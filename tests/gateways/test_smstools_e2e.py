"""Smstools through the real bridge: SMS in (poll or webhook), a reply out, its delivery shown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from conftest import AGENT, CUSTOMER, GROUP, telegram_section

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.testing.fake_smstools import INBOX_NUMBER, FakeSmstools
from bridge.testing.fake_telegram import FakeTelegram

TOKEN = "smstools-hook-0123456789"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeSmstools]:
    async with FakeSmstools() as served:
        yield served


@pytest_asyncio.fixture
async def start(
    tmp_path: Path, fake: FakeSmstools, telegram: FakeTelegram
) -> AsyncIterator[Callable[..., Any]]:
    running: list[Bridge] = []

    async def run(**gateway: Any) -> Bridge:
        section = {
            "name": "tools",
            "type": "smstools",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "sender": "Shop",
            "base_url": fake.base_url,
            "poll_interval": 0.2,
            "status_poll_interval": 0.2,
            **gateway,
        }
        config = {
            "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
            "server": {"host": "127.0.0.1", "port": 0},
            "gateways": [section],
            "chats": [telegram_section(telegram)],
            "routes": [{"gateway": "tools", "chat": "support"}],
        }
        bridge = Bridge(parse_config(config, environ={}))
        await bridge.start()
        running.append(bridge)
        return bridge

    yield run
    for bridge in running:
        await bridge.stop()


def posts(telegram: FakeTelegram, thread: int | None = None) -> list[str]:
    kwargs = {} if thread is None else {"thread_id": thread}
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP, **kwargs)]


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
    await start(receive="poll")
    fake.receive_sms(CUSTOMER, "Is my order ready?")
    await telegram.wait_for(lambda: "Is my order ready?" in posts(telegram))
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
    bridge = await start(receive="webhook", webhook_token=TOKEN, status_poll_interval=3600)
    base = f"http://127.0.0.1:{bridge.port}/webhooks/sms/tools"
    sms = fake.receive_sms(CUSTOMER, "Hello by webhook")
    refused = await fake.deliver_inbox_message(f"{base}/wrong-token-0123456789", sms)
    assert refused.status_code == 403
    assert TOKEN not in refused.text
    accepted = await fake.deliver_inbox_message(f"{base}/{TOKEN}", sms)
    assert accepted.status_code == 202, accepted.text
    await telegram.wait_for(lambda: "Hello by webhook" in posts(telegram))
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
    await telegram.wait_for(lambda: notice in posts(telegram, thread))
    assert telegram.reaction(GROUP, second_id) == ["💔"]
    # The late "submitted" never moved the first answer back.
    assert telegram.reaction(GROUP, message_id) == ["👍"]
