"""SmsGateway24 connector against its fake, over loopback HTTP: auth, send, receive, status."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from harness import per_module

from bridge.config import parse_config
from bridge.errors import (
    Ambiguous,
    BadRequest,
    ConfigError,
    DeliveryError,
    Forbidden,
    InvalidSender,
    NotFound,
    RateLimited,
    Retryable,
    Terminal,
    Unauthenticated,
    Unprocessable,
    WebhookRejected,
)
from bridge.models import OutboundSms, Outbox, Status, WebhookEvents, WebhookRequest
from bridge.testing.fake_harness import Started, WebhookReceiver
from connectors.sms.smsgateway24.client import SmsGateway24
from connectors.sms.smsgateway24.config import SmsGateway24Config
from connectors.sms.smsgateway24.fake import FakeSmsGateway24

# One fake and one webhook receiver for the module: a uvicorn stop costs ~0.1 s per server.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PAYLOADS = Path(__file__).parent / "payloads" / "smsgateway24"
HOOK_TOKEN = "sg24-hook-token-0123456789"
CUSTOMER = "+15551234567"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def section(fake: FakeSmsGateway24, **overrides: Any) -> dict[str, Any]:
    data = fake.section(
        "sg24",
        # 260 is the example device of the vendor's docs; 261 answers from its second SIM.
        devices=[{"device_id": 260}, {"device_id": 261, "sim": 2}],
        receive="both",
        webhook_token=HOOK_TOKEN,
        timeout=0.5,
    )
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


_served, fake = per_module(
    "fake", lambda: FakeSmsGateway24(devices=(260, 261, 262)), FakeSmsGateway24.reset
)
# Stands where the bridge's web server would: records what the vendor's phone posts.
_receiver, receiver = per_module(
    "receiver", lambda: WebhookReceiver("sg24").serving(), lambda r: r.got.clear()
)


@pytest_asyncio.fixture(loop_scope="module")
async def connect(fake: FakeSmsGateway24) -> AsyncIterator[Any]:
    """``await connect(**section overrides)`` -> a started gateway; all stopped after the test."""
    async with Started() as started:

        async def make(**overrides: Any) -> SmsGateway24:
            config = SmsGateway24Config.model_validate(section(fake, **overrides))
            return await started(SmsGateway24(config))

        yield make


@pytest_asyncio.fixture(loop_scope="module")
async def gw(connect: Any) -> SmsGateway24:
    gateway: SmsGateway24 = await connect()
    return gateway


def request(body: bytes, token: str | None = HOOK_TOKEN) -> WebhookRequest:
    return WebhookRequest(
        gateway="sg24", token=token, headers={}, body=body, received_at=time.time()
    )


def parse_captured(gw: SmsGateway24, captured: list[WebhookRequest]) -> WebhookEvents:
    return gw.parse_webhook(captured[-1])


def hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def sms(id: int = 41, to: str = CUSTOMER, text: str = "On my way", **kw: Any) -> OutboundSms:
    return OutboundSms(id=id, to=to, text=text, **kw)


def outbox(provider_id: str, sms_id: int = 41) -> Outbox:
    return Outbox(sms_id, 1, "sg24", CUSTOMER, "x", Status.QUEUED, provider_id=provider_id)


# config ---------------------------------------------------------------------------------------


def full_config(gateway: dict[str, Any]) -> dict[str, Any]:
    chat = {"name": "support", "type": "telegram", "bot_token": "123:abc", "chat_id": -100}
    return {
        "gateways": [gateway],
        "chats": [chat],
        "routes": [{"gateway": gateway.get("name", "sg24"), "chat": "support"}],
    }


async def test_config_section_is_registered_and_read(fake: FakeSmsGateway24) -> None:
    config = parse_config(full_config(section(fake)), environ={})
    gateway = config.gateways[0]
    assert isinstance(gateway, SmsGateway24Config)
    assert [(d.device_id, d.sim) for d in gateway.devices] == [(260, 1), (261, 2)]


async def test_config_takes_secrets_from_the_environment(fake: FakeSmsGateway24) -> None:
    data = full_config(section(fake, password="${SG24_PASS}", webhook_token="${SG24_HOOK}"))
    environ = {"SG24_PASS": "from-env", "SG24_HOOK": "h" * 20}
    gateway = parse_config(data, environ=environ).gateways[0]
    assert isinstance(gateway, SmsGateway24Config)
    assert gateway.password is not None
    assert gateway.password.get_secret_value() == "from-env"
    assert "from-env" not in repr(gateway)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"devices": None}, "gateways[0].devices: field required"),
        ({"devices": []}, "gateways[0].devices: list should have at least 1 item"),
        ({"devices": [{"sim": 1}]}, "gateways[0].devices[0].device_id: field required"),
        ({"devices": [{"device_id": 260, "sim": 0}]}, "gateways[0].devices[0].sim: input should"),
        ({"devices": [{"device_id": "phone"}]}, "gateways[0].devices[0].device_id: input should"),
        ({"devices": [{"device_id": 260}, {"device_id": 260}]}, "each device_id may appear only"),
        ({"email": None, "password": None}, "gateways[0]: needs email and password"),
        ({"password": None}, "gateways[0]: email and password go together"),
        ({"webhook_token": None}, "gateways[0]: receive: both needs webhook_token"),
        ({"webhook_token": "short"}, "gateways[0].webhook_token: must be at least 16 characters"),
        ({"webhook_token": "a/b" * 8}, "gateways[0].webhook_token: may only contain"),
        ({"base_url": "not a url"}, "gateways[0].base_url: input should be a valid URL"),
        ({"api_key": "x"}, "gateways[0].api_key: unknown key"),
    ],
)
async def test_config_errors_are_clear_and_name_the_key(
    fake: FakeSmsGateway24, overrides: dict[str, Any], problem: str
) -> None:
    data = section(fake, **{k: v for k, v in overrides.items() if v is not None})
    for key in (k for k, v in overrides.items() if v is None):
        data.pop(key, None)
    with pytest.raises(ConfigError) as caught:
        parse_config(full_config(data), environ={})
    assert any(p.startswith(problem) or problem in p for p in caught.value.problems), str(
        caught.value
    )
    assert fake.password not in str(caught.value)


async def test_a_profile_token_alone_is_enough(fake: FakeSmsGateway24, connect: Any) -> None:
    gw = await connect(email=None, password=None, token=fake.api_token)
    result = await gw.send(sms())
    assert result.provider_id == str(fake.sent[0].id)
    assert fake.logins == 0


# auth -----------------------------------------------------------------------------------------


async def test_logs_in_once_by_post_and_reuses_the_token(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    await gw.send(sms(1))
    await gw.poll_inbound(hour_ago())
    await gw.send(sms(2))
    assert fake.logins == 1
    login = next(r for r in fake.requests if r.endpoint == "gettoken")
    assert login.method == "POST"  # the password never rides in a URL
    tokens = {r.params["token"] for r in fake.requests if r.endpoint != "gettoken"}
    assert tokens == set(fake.tokens)


async def test_a_refused_token_means_one_new_login_and_the_call_goes_through(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    await gw.send(sms(1))
    fake.expire_tokens()
    result = await gw.send(sms(2))
    assert fake.logins == 2
    assert [s.customerid for s in fake.sent] == [1, 2]  # the refused call saved nothing
    assert result.provider_id == str(fake.sent[1].id)


async def test_a_refusal_that_does_not_name_the_token_also_means_a_new_login(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    fake.token_refusal = "Access denied"  # the vendor's wording is undocumented
    await gw.send(sms(1))
    fake.expire_tokens()
    result = await gw.send(sms(2))
    assert fake.logins == 2
    assert [s.customerid for s in fake.sent] == [1, 2]  # the refused call saved nothing
    assert result.provider_id == str(fake.sent[1].id)
    fake.expire_tokens()
    assert await gw.poll_inbound(hour_ago()) == []  # reads are repeated the same way
    assert fake.logins == 3


async def test_a_refusal_that_survives_a_new_login_is_raised_as_before(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    fake.token_ttl = 0.0  # every token is dead on arrival
    fake.token_refusal = "Access denied"
    with pytest.raises(Retryable, match="could not list received SMS: Access denied"):
        await gw.poll_inbound(hour_ago())
    assert fake.logins == 2  # one new login, no loop
    assert len([r for r in fake.requests if r.endpoint == "getallsms"]) == 2


async def test_concurrent_calls_refused_together_log_in_once(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    await gw.send(sms(1))
    fake.expire_tokens()
    await asyncio.gather(*(gw.send(sms(n)) for n in range(2, 6)))
    assert fake.logins == 2
    assert sorted(s.customerid or 0 for s in fake.sent) == [1, 2, 3, 4, 5]


async def test_an_old_token_is_replaced_before_it_is_refused(
    fake: FakeSmsGateway24, connect: Any
) -> None:
    gw = await connect(token_max_age=0.05)
    await gw.send(sms(1))
    await asyncio.sleep(0.1)  # lets the token age past token_max_age
    await gw.send(sms(2))
    assert fake.logins == 2
    refused = [r for r in fake.requests if r.endpoint == "addsms"]
    assert len(refused) == 2  # no call was wasted on a refusal


async def test_a_token_refused_again_after_login_is_terminal_not_a_loop(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    fake.token_ttl = 0.0  # every token is dead on arrival
    with pytest.raises(Terminal, match="refused our token: Invalid token") as caught:
        await gw.send(sms())
    assert fake.logins == 2
    assert len([r for r in fake.requests if r.endpoint == "addsms"]) == 2
    assert not any(token in str(caught.value) for token in fake.tokens)


async def test_no_password_or_token_reaches_the_logs(
    fake: FakeSmsGateway24, gw: SmsGateway24, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await gw.send(sms(1))
    fake.expire_tokens()
    await gw.poll_status([outbox("999"), outbox(str(fake.sent[0].id))])
    assert fake.logins == 2
    assert caplog.records  # httpx and our own warnings were captured
    secrets = [fake.password, *fake.tokens]
    assert not any(secret in caplog.text for secret in secrets)


async def test_wrong_password_is_terminal_with_the_vendor_words_and_no_secret(
    fake: FakeSmsGateway24, connect: Any
) -> None:
    gw = await connect(password="wrong-password-123")
    with pytest.raises(Terminal) as caught:
        await gw.send(sms())
    assert caught.value.reason == "SmsGateway24 login failed: Login or password incorrect"
    assert "wrong-password-123" not in str(caught.value)
    assert fake.sent == []


async def test_a_wrong_profile_token_is_terminal(fake: FakeSmsGateway24, connect: Any) -> None:
    gw = await connect(email=None, password=None, token="f" * 32)
    with pytest.raises(Terminal, match="refused our token") as caught:
        await gw.poll_inbound(hour_ago())
    assert "f" * 32 not in str(caught.value)
    assert len(fake.requests) == 1


# sending --------------------------------------------------------------------------------------


async def test_send_posts_the_documented_fields_with_our_id_as_customerid(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    result = await gw.send(sms(41, device="261", sim=1))
    call = next(r for r in fake.requests if r.endpoint == "addsms")
    assert call.method == "POST"
    assert {k: call.params[k] for k in ("sendto", "body", "device_id", "sim", "customerid")} == {
        "sendto": CUSTOMER,  # the vendor takes +E.164 as is
        "body": "On my way",
        "device_id": "261",
        "sim": "0",  # our SIM 1 is the vendor's slot 0
        "customerid": "41",
    }
    assert "urgent" not in call.params
    saved = fake.sent[0]
    assert (result.provider_id, result.status, result.raw_status) == (
        str(saved.id),
        Status.QUEUED,
        "1",
    )


@pytest.mark.parametrize(
    ("device", "sim", "expected"),
    [
        ("261", 2, (261, 1)),  # the device and SIM the conversation came in on
        ("261", None, (261, 1)),  # that device's default SIM (2 in the config)
        ("260", None, (260, 0)),
        (None, None, (260, 0)),  # a new conversation: the first device, its default SIM
        ("999", 2, (260, 0)),  # a device no longer configured: the first one
    ],
)
async def test_replies_leave_from_the_device_and_sim_of_the_conversation(
    fake: FakeSmsGateway24,
    gw: SmsGateway24,
    device: str | None,
    sim: int | None,
    expected: tuple[int, int],
) -> None:
    await gw.send(sms(device=device, sim=sim))
    assert (fake.sent[0].device_id, fake.sent[0].sim) == expected


async def test_urgent_flag_is_sent_when_configured(fake: FakeSmsGateway24, connect: Any) -> None:
    gw = await connect(urgent=True)
    await gw.send(sms())
    assert fake.sent[0].urgent


@pytest.mark.parametrize(
    ("to", "devices", "message"),
    [
        ("+1", None, "SmsGateway24 refused the SMS: Phone number is incorrect"),
        (CUSTOMER, [{"device_id": 999}], "SmsGateway24 refused the SMS: Device not found"),
    ],
)
async def test_a_refusal_in_http_200_is_terminal_with_the_vendor_words(
    fake: FakeSmsGateway24, connect: Any, to: str, devices: Any, message: str
) -> None:
    gw = await connect(**({"devices": devices} if devices else {}))
    with pytest.raises(Terminal) as caught:
        await gw.send(sms(to=to))
    assert caught.value.reason == message
    assert caught.value.raw_status == "error:1"
    assert fake.sent == []
    # Any error:1 may be an expired token in other words: one new login and one more try.
    assert (fake.logins, len([r for r in fake.requests if r.endpoint == "addsms"])) == (2, 2)


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ({"status": 500}, Ambiguous, "error (HTTP 500)"),
        ({"status": 502}, Ambiguous, "error (HTTP 502)"),
        ({"status": 503}, Retryable, "error (HTTP 503)"),
        ({"status": 429, "retry_after": 7}, RateLimited, "rate limit (HTTP 429)"),
        ({"status": 200, "raw": b'{"error":0,"sms_id":628'}, Ambiguous, "malformed response"),
        ({"status": 200, "raw": b"<html>busy</html>"}, Ambiguous, "malformed response"),
        ({"status": 200, "raw": b"[]"}, Ambiguous, "not a JSON object"),
        ({"status": 200, "body": {"error": 0, "message": "OK"}}, Ambiguous, "no sms_id"),
        ({"status": 504, "delay": 1.0}, Ambiguous, "timed out"),
    ],
)
async def test_send_failures_raise_what_the_core_retries_and_then_recover(
    fake: FakeSmsGateway24,
    gw: SmsGateway24,
    fault: dict[str, Any],
    error: type[DeliveryError],
    words: str,
) -> None:
    await gw.send(sms(1))  # logged in, so the fault hits the send itself
    fake.fail_next("addsms", **fault)
    with pytest.raises(error) as caught:
        await gw.send(sms(2))
    assert type(caught.value) is error
    assert words in caught.value.reason
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 7
    result = await gw.send(sms(2))
    assert result.provider_id == str(fake.sent[-1].id)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"status": 500}, Retryable),
        ({"status": 429, "retry_after": 3}, RateLimited),
        ({"status": 200, "raw": b'{"error":0,"smss":{"1":'}, Retryable),
        ({"status": 200, "body": {"error": 0, "smss": "nope"}}, Retryable),
        # Twice: the first error:1 is answered with a new login and one more try.
        ({"status": 200, "body": {"error": 1, "message": "Server busy"}, "count": 2}, Retryable),
        ({"status": 504, "delay": 1.0}, Retryable),
    ],
)
async def test_poll_failures_are_retryable_never_ambiguous(
    fake: FakeSmsGateway24, gw: SmsGateway24, fault: dict[str, Any], error: type[DeliveryError]
) -> None:
    fake.receive_sms(CUSTOMER, "hello")
    await gw.send(sms(1))
    fake.fail_next("getallsms", **fault)
    with pytest.raises(error) as caught:
        await gw.poll_inbound(hour_ago())
    assert type(caught.value) is error
    messages = await gw.poll_inbound(hour_ago())
    assert [m.text for m in messages] == ["hello"]


async def test_an_interrupted_send_is_found_by_customerid(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    await gw.send(sms(1, text="first"))
    since = datetime.now(UTC)
    fake.fail_next("addsms", status=200, delay=1.0)  # saved, but answered after our timeout
    with pytest.raises(Ambiguous):
        await gw.send(sms(2, text="second"))
    saved = str(fake.sent[-1].id)
    assert await gw.find_sent(sms(2, text="second"), since) == saved
    assert await gw.find_sent(sms(2, text="second"), since, frozenset({saved})) is None
    assert await gw.find_sent(sms(2, text="other text"), since) is None
    assert await gw.find_sent(sms(3, text="second"), since) is None
    assert await gw.find_sent(sms(2, text="second"), since + timedelta(hours=1)) is None
    call = [r for r in fake.requests if r.endpoint == "getallsms"][-1]
    assert call.params["customerid"] == "2"


async def test_a_send_that_never_arrived_is_not_found(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    since = datetime.now(UTC)
    fake.fail_next("addsms", status=500)
    with pytest.raises(Ambiguous):
        await gw.send(sms(7))
    assert await gw.find_sent(sms(7), since) is None


# receiving by polling -------------------------------------------------------------------------


async def test_poll_lists_each_incoming_sms_with_its_device_and_sim(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    first = fake.receive_sms("0049 157 52982212", "hello", device_id=260, sim=0)
    fake.receive_sms(CUSTOMER, "other phone of the account", device_id=262)
    await gw.send(sms(1))  # an outgoing row is never an incoming SMS
    second = fake.receive_sms(CUSTOMER, "from SIM 2", device_id=261, sim=1)
    messages = await gw.poll_inbound(hour_ago())
    assert [(m.provider_id, m.sender, m.text, m.device, m.sim) for m in messages] == [
        (str(first.id), "+4915752982212", "hello", "260", 1),
        (str(second.id), CUSTOMER, "from SIM 2", "261", 2),
    ]
    assert abs(messages[0].received_at.timestamp() - first.created) < 1  # the zone was applied
    call = [r for r in fake.requests if r.endpoint == "getallsms"][-1]
    assert call.params["status"] == "5"
    # The listing is the same until something new arrives; the core drops what it has.
    assert await gw.poll_inbound(hour_ago()) == messages
    third = fake.receive_sms(CUSTOMER, "later")
    later = await gw.poll_inbound(hour_ago())
    assert [m.provider_id for m in later] == [str(first.id), str(second.id), str(third.id)]


async def test_poll_asks_from_the_day_before_since_in_any_zone(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    # The account's day may start hours before ours: its rows of "yesterday" are still asked for.
    since = datetime.now(UTC) - timedelta(days=4)
    old = fake.receive_sms(CUSTOMER, "while we were down", created=time.time() - 3 * 86400)
    fake.receive_sms(CUSTOMER, "a week ago", created=time.time() - 7 * 86400)
    messages = await gw.poll_inbound(since)
    assert [m.provider_id for m in messages] == [str(old.id)]
    call = [r for r in fake.requests if r.endpoint == "getallsms"][-1]
    assert call.params["begindate"] == (since.date() - timedelta(days=1)).isoformat()


async def test_an_empty_account_polls_cleanly(fake: FakeSmsGateway24, gw: SmsGateway24) -> None:
    assert await gw.poll_inbound(hour_ago()) == []  # the vendor's PHP answers "smss": []


# receiving by webhook -------------------------------------------------------------------------


async def test_incoming_webhook_from_the_phone(
    fake: FakeSmsGateway24, gw: SmsGateway24, receiver: WebhookReceiver
) -> None:
    url, captured = receiver.url, receiver.got
    received = fake.receive_sms("+49 157 52982212", "hi there", device_id=261, sim=1)
    response = await fake.deliver_incoming(f"{url}/{HOOK_TOKEN}", received)
    assert response.status_code == 202
    events = parse_captured(gw, captured)
    (inbound,) = events.inbound
    assert (inbound.provider_id, inbound.sender, inbound.text, inbound.device) == (
        str(received.id),
        "+4915752982212",
        "hi there",
        "261",
    )
    assert inbound.sim is None  # channel_id's numbering is undocumented: not guessed
    await fake.deliver_incoming(f"{url}/{HOOK_TOKEN}", received, legacy=True)
    assert parse_captured(gw, captured).inbound[0].sim == 2  # the older payload's slot 1


async def test_documented_webhook_examples_are_understood(gw: SmsGateway24) -> None:
    (text,) = gw.parse_webhook(
        request(json.dumps(payload("webhook_incoming.json")).encode())
    ).inbound
    assert (text.provider_id, text.sender, text.text, text.device) == (
        "22080000",
        "+4915752982212",
        "Hello",
        "260",
    )
    img_body = json.dumps(payload("webhook_incoming_img.json")).encode()
    (image,) = gw.parse_webhook(request(img_body)).inbound
    assert image.text == ""
    (attachment,) = image.attachments
    assert attachment.content_type == "image/jpeg"
    assert attachment.url == payload("webhook_incoming_img.json")["img_url"]
    assert attachment.data is None
    status = gw.parse_webhook(request(json.dumps(payload("webhook_status.json")).encode()))
    (update,) = status.updates
    assert (update.provider_id, update.status, update.raw_status, update.reason) == (
        "22074938",
        Status.DELIVERED,
        "7",
        None,
    )
    assert status.event_id == update.event_id == "status:22074938:7"


CODES = [
    (1, Status.QUEUED, None),
    (2, Status.QUEUED, None),
    (3, Status.QUEUED, None),
    (6, Status.SENT, None),
    (7, Status.DELIVERED, None),
    (8, Status.FAILED, "not delivered to the recipient's phone"),
    (9, Status.FAILED, "the phone could not send it (generic failure)"),
    (10, Status.FAILED, "the phone could not send it: no mobile service"),
    (11, Status.FAILED, "the phone could not send it: null PDU"),
    (12, Status.FAILED, "the phone could not send it: its radio is off"),
    (100, Status.FAILED, "the SmsGateway24 app on the phone is not allowed to send SMS"),
    (101, Status.FAILED, "the SmsGateway24 app on the phone is not allowed to send SMS"),
]


@pytest.mark.parametrize(("code", "status", "reason"), CODES)
async def test_status_webhook_codes_map_to_our_statuses(
    fake: FakeSmsGateway24,
    gw: SmsGateway24,
    receiver: WebhookReceiver,
    code: int,
    status: Status,
    reason: str | None,
) -> None:
    url, captured = receiver.url, receiver.got
    result = await gw.send(sms())
    assert result.provider_id is not None
    await fake.deliver_status(f"{url}/{HOOK_TOKEN}", result.provider_id, code)
    (update,) = parse_captured(gw, captured).updates
    assert (update.provider_id, update.status, update.raw_status, update.reason) == (
        result.provider_id,
        status,
        str(code),
        reason,
    )


@pytest.mark.parametrize(("code", "status", "reason"), CODES)
async def test_polled_status_codes_map_to_our_statuses(
    fake: FakeSmsGateway24, gw: SmsGateway24, code: int, status: Status, reason: str | None
) -> None:
    result = await gw.send(sms())
    assert result.provider_id is not None
    fake.set_status(result.provider_id, code)
    (update,) = await gw.poll_status([outbox(result.provider_id)])
    assert (update.provider_id, update.status, update.raw_status, update.reason) == (
        result.provider_id,
        status,
        str(code),
        reason,
    )


async def test_out_of_order_status_events_stay_distinct_and_redeliveries_repeat_their_id(
    fake: FakeSmsGateway24, gw: SmsGateway24, receiver: WebhookReceiver
) -> None:
    url, captured = receiver.url, receiver.got
    result = await gw.send(sms())
    assert result.provider_id is not None
    events = []
    for code in (7, 6, 7):  # delivered overtakes sent; then delivered is sent again
        await fake.deliver_status(f"{url}/{HOOK_TOKEN}", result.provider_id, code)
        events.append(parse_captured(gw, captured))
    statuses = [e.updates[0].status for e in events]
    assert statuses == [Status.DELIVERED, Status.SENT, Status.DELIVERED]
    # Each is reported as it came (the core keeps the highest rank: see the e2e test); the
    # repeat carries the same envelope id, which the core de-duplicates.
    assert events[0].event_id == events[2].event_id != events[1].event_id


async def test_an_unknown_status_code_is_queued_with_its_raw_code(gw: SmsGateway24) -> None:
    body = {"sms_id": 5, "status_id": 42, "status_message": "Something new"}
    (update,) = gw.parse_webhook(request(json.dumps(body).encode())).updates
    assert (update.status, update.raw_status) == (Status.QUEUED, "42")


@pytest.mark.parametrize(
    ("token", "error", "status"),
    [
        ("wrong-token-0123456789", Forbidden, 403),
        (HOOK_TOKEN[:-1], Forbidden, 403),
        (None, Unauthenticated, 401),
    ],
)
async def test_webhook_without_the_right_token_is_refused(
    fake: FakeSmsGateway24,
    gw: SmsGateway24,
    receiver: WebhookReceiver,
    token: str | None,
    error: type[WebhookRejected],
    status: int,
) -> None:
    url, captured = receiver.url, receiver.got
    received = fake.receive_sms(CUSTOMER, "hi")
    await fake.deliver_incoming(url if token is None else f"{url}/{token}", received)
    with pytest.raises(error) as caught:
        parse_captured(gw, captured)
    assert type(caught.value) is error
    assert caught.value.status == status
    assert HOOK_TOKEN not in str(caught.value)


async def test_webhooks_are_not_found_without_a_configured_token(connect: Any) -> None:
    gw = await connect(receive="poll", webhook_token=None)
    with pytest.raises(NotFound):
        gw.parse_webhook(request(b"{}", token="anything-at-all-0123"))


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b'{"sms_id":220', BadRequest, "malformed JSON"),
        (b"\xff\xfe", BadRequest, "malformed JSON"),
        (b"[1, 2]", BadRequest, "expected an object"),
        (b'{"address":"+4915752982212","body":"x"}', Unprocessable, "missing field 'sms_id'"),
        (b'{"sms_id":"abc","address":"+491"}', Unprocessable, "field 'sms_id' must be a number"),
        (b'{"sms_id":1,"body":"x"}', InvalidSender, "missing field 'address'"),
        (b'{"sms_id":1,"address":true}', InvalidSender, "field 'address' must be a phone"),
        (b'{"sms_id":1,"address":"' + b"9" * 40 + b'"}', InvalidSender, "field 'address' is not"),
        (b'{"sms_id":1,"address":"+4915752982212","body":5}', Unprocessable, "'body' must be"),
        (b'{"sms_id":1,"status_id":"sent"}', Unprocessable, "'status_id' must be a number"),
        (b'{"status_id":7}', Unprocessable, "missing field 'sms_id'"),
    ],
)
async def test_malformed_webhooks_get_a_clear_4xx(
    gw: SmsGateway24, body: bytes, error: type[WebhookRejected], words: str
) -> None:
    with pytest.raises(error) as caught:
        gw.parse_webhook(request(body))
    assert type(caught.value) is error
    assert 400 <= caught.value.status < 500
    assert words in caught.value.reason


async def test_webhooks_for_other_devices_or_incoming_status_are_ignored(
    gw: SmsGateway24,
) -> None:
    other = {**payload("webhook_incoming.json"), "device_id": 262}
    assert "262" in (gw.parse_webhook(request(json.dumps(other).encode())).ignored or "")
    incoming = {**payload("webhook_status.json"), "status_id": 5}
    events = gw.parse_webhook(request(json.dumps(incoming).encode()))
    assert events.ignored is not None
    assert events.updates == ()


# status polling and backfill ------------------------------------------------------------------


async def test_status_poll_skips_an_unknown_sms_but_fails_when_nothing_answers(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    result = await gw.send(sms())
    assert result.provider_id is not None
    fake.set_status(result.provider_id, 6)
    updates = await gw.poll_status([outbox("999"), outbox(result.provider_id)])
    assert [(u.provider_id, u.status) for u in updates] == [(result.provider_id, Status.SENT)]
    with pytest.raises(Retryable, match="Sms not found"):
        await gw.poll_status([outbox("999")])
    assert gw.awaits == (Status.QUEUED, Status.SENT)  # sent SMS may still be delivered


async def test_history_lists_both_directions_of_one_number(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    fake.receive_sms("+49 157 52982212", "question", created=time.time() - 60)
    fake.receive_sms(CUSTOMER, "someone else")
    await gw.send(sms(1, to="+4915752982212", text="answer"))
    fake.receive_sms("+4915752982212", "thanks")
    items = await gw.history("+4915752982212", 10)
    assert [(i.outgoing, i.text) for i in items] == [
        (False, "question"),
        (True, "answer"),
        (False, "thanks"),
    ]
    assert all(i.at is not None and i.provider_id for i in items)
    assert [i.text for i in await gw.history("+4915752982212", 2)] == ["answer", "thanks"]


async def test_documented_list_examples_are_read_with_their_time_zones(
    fake: FakeSmsGateway24, connect: Any
) -> None:
    gw = await connect(devices=[{"device_id": 260}, {"device_id": 11231}])
    fake.fail_next("getallsms", status=200, body=payload("getallsms.json"))
    items = await gw.history("+4915752982212", 10)
    assert [i.provider_id for i in items] == ["22074698", "22074938"]
    assert items[1].at == datetime(2021, 7, 11, 11, 4, 46, tzinfo=UTC)  # +02:00 offset
    fake.fail_next("getallsms", status=200, body=payload("getallsms_paris.json"))
    items = await gw.history("+4912312312332", 10)
    assert items[0].at == datetime(2023, 11, 2, 21, 44, 43, tzinfo=UTC)  # Paris in winter


# the fake against the vendor's documented shapes ----------------------------------------------


def same_shape(ours: dict[str, Any], documented: dict[str, Any]) -> None:
    assert set(ours) == set(documented)
    for key, value in documented.items():
        if value is not None and ours[key] is not None:
            assert type(ours[key]) is type(value), key


async def test_the_fake_answers_in_the_documented_shapes(
    fake: FakeSmsGateway24, gw: SmsGateway24
) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url, trust_env=False) as client:
        login = (await client.post("/gettoken", data={"email": fake.email, "pass": "x"})).json()
        assert login == payload("gettoken_refused.json")
        form = {"email": fake.email, "pass": fake.password}
        same_shape((await client.post("/gettoken", data=form)).json(), payload("gettoken.json"))
    result = await gw.send(sms())
    fake.set_status(str(result.provider_id), 7)
    fake.receive_sms(CUSTOMER, "hi")
    token = next(iter(fake.tokens))
    async with httpx.AsyncClient(base_url=fake.base_url, trust_env=False) as client:
        sent = await client.post(
            "/addsms",
            data={"token": token, "sendto": CUSTOMER, "body": "x", "device_id": "260"},
        )
        same_shape(sent.json(), payload("addsms.json"))
        status = await client.get(
            "/getsmsstatus", params={"token": token, "sms_id": result.provider_id}
        )
        same_shape(status.json(), payload("getsmsstatus.json"))
        listed = (await client.post("/getallsms", data={"token": token})).json()
    documented = payload("getallsms.json")
    same_shape(listed, documented)
    for row in listed["smss"].values():
        same_shape(row, next(iter(documented["smss"].values())))
    received = fake.messages[-1]
    same_shape(fake.incoming_payload(received), payload("webhook_incoming.json"))
    same_shape(
        fake.status_payload(fake.find(str(result.provider_id))), payload("webhook_status.json")
    )


# -- device status (the watchdog) ---------------------------------------------------------------


async def test_device_status_is_each_configured_phones_last_seen(
    gw: SmsGateway24, fake: FakeSmsGateway24
) -> None:
    fake.last_seen[261] = time.time() - 3600  # its app was killed an hour ago
    found = {d.device: d for d in await gw.device_status()}
    assert set(found) == {"260", "261"}  # 262 is the account's, not the bridge's
    assert all(d.online is None and d.battery is None for d in found.values())
    seen_260, seen_261 = found["260"].last_seen, found["261"].last_seen
    assert seen_260 is not None and abs(seen_260.timestamp() - time.time()) < 5
    assert seen_261 is not None and abs(seen_261.timestamp() - (time.time() - 3600)) < 5
    asked = [r for r in fake.requests if r.endpoint == "getdevicestatus"]
    assert [r.params["device_id"] for r in asked] == ["260", "261"]


async def test_device_status_of_an_unknown_device_is_an_error(
    connect: Any, fake: FakeSmsGateway24
) -> None:
    gateway: SmsGateway24 = await connect(devices=[{"device_id": 999}])
    with pytest.raises(Terminal, match="Device not found"):
        await gateway.device_status()
    fake.fail_next("getdevicestatus", status=502)
    gateway = await connect()
    with pytest.raises(Retryable, match="HTTP 502"):
        await gateway.device_status()
