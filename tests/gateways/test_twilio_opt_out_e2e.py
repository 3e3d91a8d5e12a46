"""Twilio's opt-out through the real bridge: error 21610 marks the number opted out, and a
STOP texted to Twilio's number stops us as it stops Twilio. And a long reply's part count,
told once through Twilio's sent and delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENT, GROUP, Harness, telegram_section

from bridge.app import Bridge
from bridge.testing.fake_harness import Started, bridge_config
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.twilio.fake import NUMBER, FakeTwilio

CUSTOMER = "+14155552345"
GATEWAY_REFUSED = (
    "💔 SMS not sent: Twilio rejected the request (HTTP 400, error 21610): Attempt to send to "
    "unsubscribed recipient (The recipient has unsubscribed (replied STOP)). This number opted "
    "out at the gateway, so nothing was sent; it is marked opted out here too."
)
REFUSED = "💔 SMS not sent: this number opted out, so nothing was sent to it."


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def start(
    tmp_path: Path, twilio: FakeTwilio, telegram: FakeTelegram
) -> AsyncIterator[Callable[..., Awaitable[Harness[FakeTwilio]]]]:
    async with Started() as started:

        async def run(**gw: Any) -> Harness[FakeTwilio]:
            polls = {"poll_interval": 0.2, "status_poll_interval": 3600, "receive": "poll"}
            gateway = twilio.section("tw", from_number=NUMBER, **(polls | gw))
            config = bridge_config(tmp_path, gateway, telegram_section(telegram))
            return Harness(await started(Bridge(config)), twilio, telegram)

        yield run


def creates(twilio: FakeTwilio) -> int:
    """Calls to create a message, accepted or refused."""
    return sum(
        1 for r in twilio.requests if r.method == "POST" and r.path.endswith("Messages.json")
    )


async def test_error_21610_marks_the_number_opted_out(
    start: Callable[..., Awaitable[Harness[FakeTwilio]]], twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    # The customer had texted STOP to Twilio before the bridge was set up: we never saw it.
    twilio.unsubscribed.add(CUSTOMER)
    harness = await start()
    twilio.receive_sms(CUSTOMER, "what are your hours?")
    await telegram.wait_for(lambda: "what are your hours?" in harness.posts())
    thread = harness.topics()[0].thread_id
    first = telegram.user_message(GROUP, AGENT, "9 to 5", thread_id=thread)
    await telegram.wait_for(lambda: GATEWAY_REFUSED in harness.posts(thread_id=thread))
    await telegram.wait_for(lambda: telegram.reaction(GROUP, first["message_id"]) == ["💔"])
    assert harness.bridge.store is not None
    assert (await harness.bridge.store.contacts.get(CUSTOMER)).opted_out
    assert creates(twilio) == 1 and twilio.sent == []
    sample = {"gateway": "tw", "event": "gateway"}
    assert harness.bridge.metrics.registry.get_sample_value("smsbridge_opt_outs_total", sample)

    # From now on the bridge itself refuses: Twilio is not called again.
    telegram.user_message(GROUP, AGENT, "are you there?", thread_id=thread)
    await telegram.wait_for(
        lambda: any(p.startswith(REFUSED) for p in harness.posts(thread_id=thread))
    )
    await harness.settled()
    assert creates(twilio) == 1


async def test_stop_and_start_texted_to_twilio_stop_and_restart_both(
    start: Callable[..., Awaitable[Harness[FakeTwilio]]], twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start()
    twilio.receive_sms(CUSTOMER, "hello")
    await telegram.wait_for(lambda: "hello" in harness.posts())
    thread = harness.topics()[0].thread_id
    twilio.receive_sms(CUSTOMER, "Stop")
    await telegram.wait_for(
        lambda: (
            "🚫 +1 415-555-2345 replied STOP: opted out; replies to it will not be sent."
            in harness.posts(thread_id=thread)
        )
    )
    telegram.user_message(GROUP, AGENT, "sorry to see you go", thread_id=thread)
    await telegram.wait_for(
        lambda: any(p.startswith(REFUSED) for p in harness.posts(thread_id=thread))
    )
    assert creates(twilio) == 0  # refused here, before Twilio would have said 21610
    twilio.receive_sms(CUSTOMER, "START")
    await telegram.wait_for(
        lambda: (
            "✅ +1 415-555-2345 replied START: opted back in; replies are sent."
            in harness.posts(thread_id=thread)
        )
    )
    telegram.user_message(GROUP, AGENT, "welcome back", thread_id=thread)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    assert twilio.sent[0].body == "welcome back"


async def test_a_long_replys_part_count_is_told_once_through_sent_and_delivered(
    start: Callable[..., Awaitable[Harness[FakeTwilio]]], twilio: FakeTwilio, telegram: FakeTelegram
) -> None:
    harness = await start(status_poll_interval=0.2)
    twilio.receive_sms(CUSTOMER, "hello")
    await telegram.wait_for(lambda: "hello" in harness.posts())
    thread = harness.topics()[0].thread_id
    long = "Thanks 🙂 " + "see you soon " * 6  # UCS-2: 87 units, 2 parts
    reply = telegram.user_message(GROUP, AGENT, long, thread_id=thread)
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    twilio.set_status(twilio.sent[0].sid, "sent")
    await telegram.wait_for(
        lambda: "📤 sent as 2 SMS parts (UCS-2)" in harness.posts(thread_id=thread)
    )
    twilio.set_status(twilio.sent[0].sid, "delivered")
    await telegram.wait_for(lambda: telegram.reaction(GROUP, reply["message_id"]) == ["👍"])
    await harness.settled()
    assert harness.posts(thread_id=thread).count("📤 sent as 2 SMS parts (UCS-2)") == 1
