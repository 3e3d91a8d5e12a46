"""Twilio through the real bridge: SMS in -> topic -> reply -> SMS out -> delivery reaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT, GROUP, Harness, telegram_section

from bridge.app import Bridge
from bridge.testing.fake_harness import Started, bridge_config, free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.twilio.fake import NUMBER, FakeTwilio

CUSTOMER = "+14155552345"
TOKEN = "twilio-hook-token-0123456789"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def start(
    tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram
) -> AsyncIterator[Callable[..., Awaitable[Harness[FakeTwilio]]]]:
    """``await start(server={...}, **gateway settings)`` -> a running bridge on the fakes."""
    async with Started() as started:

        async def run(server: dict[str, Any] | None = None, **gw: Any) -> Harness[FakeTwilio]:
            polls = {"poll_interval": 0.2, "status_poll_interval": 3600}
            gateway = twilio.section("tw", from_number=NUMBER, **polls) | gw
            chat = telegram_section(telegram)
            config = bridge_config(tmp_path, gateway, chat, **(server or {}))
            return Harness(await started(Bridge(config)), twilio, telegram)

        yield run


async def test_sms_by_webhook_reply_and_delivery_by_status_callback(
    start: Callable[..., Awaitable[Harness[FakeTwilio]]], twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    port = free_port()
    server = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    harness = await start(server, receive="webhook", webhook_token=TOKEN)
    await telegram.wait_for(lambda: telegram.webhook is not None)
    hook = f"http://127.0.0.1:{port}/webhooks/sms/tw/{TOKEN}"

    # An SMS reaches Twilio, Twilio calls the bridge, and is answered with empty TwiML.
    incoming = twilio.receive_sms(CUSTOMER, "Is my order ready?")
    answer = await twilio.deliver_inbound(hook, incoming)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    await telegram.wait_for(lambda: "Is my order ready?" in harness.posts())
    # Twilio retries when it thinks we failed: the same MessageSid is stored once.
    assert (await twilio.deliver_inbound(hook, incoming)).status_code == 200
    forged = await twilio.deliver_inbound(hook, incoming, auth_token="not-the-auth-token")
    assert forged.status_code == 401
    await harness.idle()
    [topic] = harness.topics()
    assert harness.posts() == ["Is my order ready?"]

    # The agent answers in the topic; it leaves from the number the customer wrote to.
    reply = telegram.user_message(GROUP, AGENT, "Yes, come by at 5", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert (sent.to, sent.from_, sent.body) == (CUSTOMER, NUMBER, "Yes, come by at 5")
    assert sent.status_callback == hook
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["✍"])

    # Twilio's callbacks move the reaction on; a late "sent" after "delivered" changes nothing.
    callback = await twilio.advance(sent.sid, "sent")
    assert callback is not None and callback.status_code == 200
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👌"])
    await twilio.advance(sent.sid, "delivered")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    late = await twilio.advance(sent.sid, "sent")
    assert late is not None and late.status_code == 200
    await harness.idle()
    assert telegram.reaction(GROUP, reply["message_id"]) == ["👍"]
    assert len(twilio.sent) == 1 and telegram.violations == []


async def test_sms_by_polling_and_delivery_by_status_polling(
    start: Callable[..., Awaitable[Harness[FakeTwilio]]], twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start(receive="poll", status_poll_interval=0.2)
    twilio.receive_sms(CUSTOMER, "Anyone there?")
    await telegram.wait_for(lambda: "Anyone there?" in harness.posts())
    [topic] = harness.topics()
    reply = telegram.user_message(GROUP, AGENT, "Here!", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert sent.status_callback is None  # no public URL: Twilio cannot call back
    twilio.set_status(sent.sid, "sent")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👌"])
    twilio.set_status(sent.sid, "delivered")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    assert any(r.path.endswith(f"/Messages/{sent.sid}.json") for r in twilio.requests)

    second = telegram.user_message(GROUP, AGENT, "Hello?", thread_id=topic.thread_id)
    await twilio.wait_for(lambda: len(twilio.sent) == 2)
    twilio.set_status(twilio.sent[1].sid, "undelivered", error_code=30003)
    await telegram.wait_for(lambda: telegram.reaction(GROUP, second["message_id"]) == ["💔"])
    await telegram.wait_for(
        lambda: any("Unreachable destination handset" in t for t in harness.posts(topic.thread_id))
    )
