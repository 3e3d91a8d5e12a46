"""Several gateways in one bridge: each conversation is answered the way it came in."""

from __future__ import annotations

from pathlib import Path

from conftest import AGENT, GROUP, Harness, telegram_section

from bridge.config import parse_config
from bridge.testing.fake_harness import running_bridge
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsgateway24.fake import FakeSmsGateway24
from connectors.sms.twilio.fake import NUMBER, FakeTwilio

PHONE_CUSTOMER = "+15551230001"  # texts the Android phone's second device, first SIM
TWILIO_CUSTOMER = "+15551230002"  # texts the Twilio number
NEW_CUSTOMER = "+15551230003"  # nobody has texted yet: /sms picks the default route


async def test_replies_leave_by_the_gateway_device_and_sim_they_came_in_on(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    polls = {"receive": "poll", "poll_interval": 0.2, "status_poll_interval": 3600}
    devices = [{"device_id": 260}, {"device_id": 261, "sim": 2}]  # 261: SIM 2 unless told
    async with FakeSmsGateway24() as phones, FakeTwilio() as twilio:
        config = parse_config(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
                "server": {"host": "127.0.0.1", "port": 0},
                "gateways": [
                    phones.section("phones", devices=devices, **polls),
                    twilio.section("tw", from_number=NUMBER, **polls),
                ],
                "chats": [telegram_section(telegram)],
                "routes": [
                    {"gateway": "tw", "chat": "support"},
                    {"gateway": "phones", "chat": "support", "default": True},
                ],
            },
            environ={},
        )
        async with running_bridge(config) as bridge:
            harness = Harness(bridge, phones, telegram)
            phones.receive_sms(PHONE_CUSTOMER, "From the phone line", device_id=261, sim=0)
            twilio.receive_sms(TWILIO_CUSTOMER, "From the Twilio line")
            await telegram.wait_for(lambda: len(harness.posts()) == 2)
            await harness.idle()
            topics = {t.name[-4:]: t.thread_id for t in harness.topics()}
            assert set(topics) == {"0001", "0002"}

            telegram.user_message(GROUP, AGENT, "Phone answer", thread_id=topics["0001"])
            telegram.user_message(GROUP, AGENT, "Twilio answer", thread_id=topics["0002"])
            telegram.user_message(GROUP, AGENT, f"/sms {NEW_CUSTOMER} Hello from us")
            await phones.wait_for(lambda: len(phones.sent) == 2)
            await twilio.wait_for(lambda: len(twilio.sent) == 1)

            by_phone = {(s.sendto, s.body): (s.device_id, s.sim) for s in phones.sent}
            # The answer leaves from the device and SIM that received the SMS, not the default.
            assert by_phone[(PHONE_CUSTOMER, "Phone answer")] == (261, 0)
            # A new conversation goes by the route marked default, from its first device.
            assert by_phone[(NEW_CUSTOMER, "Hello from us")] == (260, 0)
            [sent] = twilio.sent
            assert (sent.to, sent.from_, sent.body) == (TWILIO_CUSTOMER, NUMBER, "Twilio answer")
            assert telegram.violations == []
