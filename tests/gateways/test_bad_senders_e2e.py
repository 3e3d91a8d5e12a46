"""Senders that are no address, through every gateway and the real bridge: no thread, ever.

A webhook carrying one is refused with 422 naming the vendor's field, and nothing is stored;
a polled listing skips that row with a warning naming the gateway and the field, and bridges
the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import CUSTOMER, GROUP, Harness, telegram_section

from bridge.store import schema
from bridge.testing.fake_harness import bridge_config, free_port, idle, running_bridge
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.ip1.fake import FakeIp1
from connectors.sms.smsgate.fake import FakeSmsGate
from connectors.sms.smsgateway24.fake import FakeSmsGateway24
from connectors.sms.smsmobileapi import fake_webhooks as wh
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi
from connectors.sms.smstools.fake import INBOX_NUMBER, FakeSmstools
from connectors.sms.twilio.fake import NUMBER as TWILIO_NUMBER
from connectors.sms.twilio.fake import FakeTwilio
from connectors.sms.twilio.fake_webhooks import inbound_params

TOKEN = "bad-sender-hook-token-0123456789"
FORTY_DIGITS = "9" * 40
Post = Callable[[Any, str, object], Awaitable[httpx.Response]]  # (fake, bridge URL, sender)


async def post_smsmobileapi(fake: FakeSmsMobileApi, base: str, sender: object) -> httpx.Response:
    data = wh.received_data(
        guid="G-1", number="", message="hi", received_at=time.time(), alias=None, device="d"
    )
    return await fake.deliver_v2(f"{base}/webhooks/sms/gw", "sms.received", data | {"from": sender})


async def post_smsgateway24(fake: FakeSmsGateway24, base: str, sender: object) -> httpx.Response:
    payload = fake.incoming_payload(fake.receive_sms(CUSTOMER, "hi")) | {"address": sender}
    return await fake.post_json(f"{base}/webhooks/sms/gw/{TOKEN}", payload)


async def post_ip1(fake: FakeIp1, base: str, sender: object) -> httpx.Response:
    payload = fake.receive_sms(CUSTOMER, "hi").resource(numeric=False) | {"sender": sender}
    return await fake.post_json(f"{base}/webhooks/sms/gw/{TOKEN}", payload)


async def post_smstools(fake: FakeSmstools, base: str, sender: object) -> httpx.Response:
    message = {"sender": sender, "receiver": INBOX_NUMBER, "content": "hi"}
    event = {"webhook_type": "inbox_message", "message": message}
    return await fake.post_webhook(f"{base}/webhooks/sms/gw/{TOKEN}", [event])


async def post_smsgate(fake: FakeSmsGate, base: str, sender: object) -> httpx.Response:
    payload = fake.received_payload(fake.receive_sms(CUSTOMER, "hi"))
    payload |= {"sender": sender, "phoneNumber": sender}
    [answer] = await fake.deliver("sms:received", payload, url=f"{base}/webhooks/sms/gw")
    return answer


async def post_twilio(fake: FakeTwilio, base: str, sender: object) -> httpx.Response:
    message = fake.receive_sms(CUSTOMER, "hi", to=TWILIO_NUMBER)
    params = inbound_params(fake.account_sid, fake.base_url, message) | {"From": str(sender)}
    return await fake.post_signed(f"{base}/webhooks/sms/gw", params)


@dataclass(frozen=True)
class Gateway:
    id: str
    fake: Callable[[], AbstractAsyncContextManager[Any]]
    settings: dict[str, Any]  # of its config section, beyond what the fake gives
    post: Post
    field: str  # the vendor's name of the sender field, as the 422 must say it
    bad: tuple[object, ...]  # senders its payloads can carry (a form has no booleans)


GATEWAYS = [
    Gateway(
        "smsmobileapi", FakeSmsMobileApi, {}, post_smsmobileapi, "data.from", (True, FORTY_DIGITS)
    ),
    Gateway(
        "smsgateway24",
        FakeSmsGateway24,
        {"devices": [{"device_id": 260}], "webhook_token": TOKEN},
        post_smsgateway24,
        "address",
        (True, FORTY_DIGITS),
    ),
    Gateway(
        "ip1",
        FakeIp1,
        {"sender": "Salon", "webhook_token": TOKEN},
        post_ip1,
        "sender",
        (True, FORTY_DIGITS),
    ),
    Gateway(
        "smstools",
        FakeSmstools,
        {"sender": "Shop", "webhook_token": TOKEN},
        post_smstools,
        "[0].message.sender",
        (True, FORTY_DIGITS),
    ),
    Gateway(
        "smsgate",
        lambda: FakeSmsGate("cloud"),
        {},
        post_smsgate,
        "payload.sender",
        (True, FORTY_DIGITS),
    ),
    Gateway(
        "twilio",
        FakeTwilio,
        {"from_number": TWILIO_NUMBER},
        post_twilio,
        "From",
        (FORTY_DIGITS, "+1234567890123456", "BANK\x00"),
    ),
]


@asynccontextmanager
async def bridged(
    tmp_path: Path, telegram: FakeTelegram, fake: Any, **settings: Any
) -> AsyncIterator[Harness[Any]]:
    port = free_port()
    server = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    # A public URL would switch Telegram to webhooks; the fake is polled instead.
    chat = telegram_section(telegram) | {"transport": "polling"}
    section = fake.section("gw", status_poll_interval=3600, **settings)
    async with running_bridge(bridge_config(tmp_path, section, chat, **server)) as bridge:
        yield Harness(bridge, fake, telegram)


async def inbound_rows(harness: Harness[Any]) -> int:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        query = sa.select(sa.func.count()).select_from(schema.inbound)
        return int((await conn.execute(query)).scalar() or 0)


@pytest.mark.parametrize("gw", GATEWAYS, ids=[g.id for g in GATEWAYS])
async def test_a_webhook_with_a_sender_that_is_no_address_is_422_and_opens_no_thread(
    tmp_path: Path, telegram: FakeTelegram, gw: Gateway
) -> None:
    async with (
        gw.fake() as fake,
        bridged(tmp_path, telegram, fake, receive="webhook", **gw.settings) as harness,
    ):
        for sender in gw.bad:
            answer = await gw.post(fake, harness.base, sender)
            assert answer.status_code == 422, (sender, answer.text)
            assert f"'{gw.field}'" in answer.json()["error"], answer.text
        # Refused before anything was stored: there is nothing a chat worker could post.
        assert await inbound_rows(harness) == 0
        assert (await harness.bridge.store.backlog())["chat_jobs"] == {}  # type: ignore[union-attr]
        assert telegram.count("createForumTopic") == 0
        assert telegram.sent_messages(GROUP) == []


# polled listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poller:
    id: str
    fake: Callable[[], AbstractAsyncContextManager[Any]]
    settings: dict[str, Any]
    receive: Callable[[Any, str, str], object]  # (fake, sender, text): an SMS in its inbox
    field: str


POLLERS = [
    Poller("smsmobileapi", FakeSmsMobileApi, {}, lambda f, s, t: f.receive_sms(s, t), "number"),
    Poller(
        "smsgateway24",
        FakeSmsGateway24,
        {"devices": [{"device_id": 260}]},
        lambda f, s, t: f.receive_sms(s, t),
        "sendto",
    ),
    Poller(
        "smstools", FakeSmstools, {"sender": "Shop"}, lambda f, s, t: f.receive_sms(s, t), "sender"
    ),
    Poller(
        "smsgate", lambda: FakeSmsGate("local"), {}, lambda f, s, t: f.receive_sms(s, t), "sender"
    ),
    Poller(
        "twilio",
        FakeTwilio,
        {"from_number": TWILIO_NUMBER},
        lambda f, s, t: f.receive_sms(s, t, to=TWILIO_NUMBER),
        "from",
    ),
]


@pytest.mark.parametrize("gw", POLLERS, ids=[g.id for g in POLLERS])
async def test_a_polled_row_with_a_sender_that_is_no_address_is_skipped_and_the_rest_bridged(
    tmp_path: Path, telegram: FakeTelegram, gw: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with gw.fake() as fake:
        gw.receive(fake, FORTY_DIGITS, "from nobody")
        gw.receive(fake, CUSTOMER, "from a customer")
        async with bridged(
            tmp_path, telegram, fake, receive="poll", poll_interval=0.2, **gw.settings
        ) as harness:
            await telegram.wait_for(lambda: "from a customer" in harness.posts())
            await idle(harness.bridge)
            assert await inbound_rows(harness) == 1
    assert "from nobody" not in harness.posts()
    assert len(harness.topics()) == 1
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped, "no warning about the skipped row"
    assert all(m.startswith("gw: ") and f"'{gw.field}'" in m for m in skipped), skipped
