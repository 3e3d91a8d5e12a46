"""SMSGate connector against the fake at the HTTP boundary: send, receive, status, faults."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.config import parse_config
from bridge.errors import (
    Ambiguous,
    BadRequest,
    ConfigError,
    Forbidden,
    RateLimited,
    Retryable,
    Terminal,
    Unauthenticated,
    Unprocessable,
)
from bridge.models import OutboundSms, Outbox, Status, WebhookRequest
from bridge.ports import PollsInbound
from connectors.sms.smsgate.client import SmsGate, SmsGateConfig, SmsGateLocal, create
from connectors.sms.smsgate.fake import FakeSmsGate
from connectors.sms.smsgate.fake_phone import sign
from connectors.sms.smsgate.registration import webhook_id

PAYLOADS = Path(__file__).parent / "payloads" / "smsgate"
SPEC = json.loads((PAYLOADS / "android-sms-gateway.swagger.json").read_text())
KEY = "signing-key-123"
TOKEN = "url-token-0123456789abcdef"
CUSTOMER = "+15551234567"


def payload(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


@pytest.fixture
async def cloud() -> AsyncIterator[FakeSmsGate]:
    async with FakeSmsGate("cloud", signing_key=KEY, spec=SPEC) as fake:
        yield fake


@pytest.fixture
async def local() -> AsyncIterator[FakeSmsGate]:
    async with FakeSmsGate("local", signing_key=KEY, spec=SPEC) as fake:
        yield fake


def section(fake: FakeSmsGate, **extra: Any) -> dict[str, Any]:
    return fake.section("phone", receive="webhook", signing_key=KEY, timeout=2, region="US") | extra


@asynccontextmanager
async def connected(
    fake: FakeSmsGate, public_url: str | None = None, **extra: Any
) -> AsyncIterator[SmsGate]:
    gateway = create(SmsGateConfig.model_validate(section(fake, **extra)), public_url)
    await gateway.start()
    try:
        await gateway.register_webhooks()  # the bridge does it as a duty of one instance
        yield gateway
    finally:
        await gateway.stop()


def signed(
    body: bytes, *, key: str = KEY, skew: int = 0, token: str | None = None
) -> WebhookRequest:
    stamp = int(time.time()) + skew
    headers = {"x-signature": sign(key, body, stamp), "x-timestamp": str(stamp)}
    return WebhookRequest("phone", token, headers, body, time.time())


def envelope(event: str, payload_: dict[str, Any], event_id: str = "evt-1") -> bytes:
    body = {
        "deviceId": "dev",
        "event": event,
        "id": event_id,
        "webhookId": "w",
        "payload": payload_,
    }
    return json.dumps(body).encode()


def outbox(provider_id: str, status: Status = Status.QUEUED, raw: str = "Pending") -> Outbox:
    return Outbox(1, 1, "phone", CUSTOMER, "hi", status, provider_id, raw_status=raw)


# send ---------------------------------------------------------------------------------------


async def test_send_uses_our_id_sim_and_device(cloud: FakeSmsGate) -> None:
    async with connected(cloud) as gateway:
        sms = OutboundSms(7, CUSTOMER, "Hello", device="yVULogr4Y1ksRfnos1Dsw", sim=2)
        result = await gateway.send(sms)
    assert (result.provider_id, result.status, result.raw_status) == (
        "smsbridge-7",
        Status.QUEUED,
        "Pending",
    )
    [request] = [r for r in cloud.requests if r.method == "POST"]
    assert request.path == "/3rdparty/v1/messages"
    assert request.auth == "basic"
    assert request.body == {
        "id": "smsbridge-7",
        "textMessage": {"text": "Hello"},
        "phoneNumbers": [CUSTOMER],
        "withDeliveryReport": True,
        "simNumber": 2,
        "deviceId": "yVULogr4Y1ksRfnos1Dsw",
    }
    assert cloud.messages["smsbridge-7"].sim == 2


async def test_local_mode_posts_to_message_without_device(local: FakeSmsGate) -> None:
    async with connected(local, sim=1) as gateway:
        await gateway.send(
            OutboundSms(3, CUSTOMER, "Hi", device="ffffffffceb0b1db0000018e937c815b")
        )
    [request] = local.requests
    assert request.path == "/message"
    assert "deviceId" not in request.body
    assert request.body["simNumber"] == 1  # the config's SIM when the conversation has none


async def test_a_repeated_id_is_409_and_counts_as_accepted(cloud: FakeSmsGate) -> None:
    async with connected(cloud) as gateway:
        first = await gateway.send(OutboundSms(9, CUSTOMER, "once"))
        cloud.set_state("smsbridge-9", "Sent")
        again = await gateway.send(OutboundSms(9, CUSTOMER, "once"))
    assert [r.status for r in cloud.requests if r.method == "POST"] == [202, 409]
    assert len(cloud.messages) == 1
    assert first.provider_id == again.provider_id == "smsbridge-9"
    assert (again.status, again.raw_status) == (Status.SENT, "Sent")


async def test_a_409_for_another_number_is_refused_not_dropped(cloud: FakeSmsGate) -> None:
    async with connected(cloud) as gateway:
        await gateway.send(OutboundSms(1, "+15559876543", "old install"))
        with pytest.raises(Terminal, match="another number") as caught:
            await gateway.send(OutboundSms(1, CUSTOMER, "new install"))
    assert caught.value.raw_status == "409"


async def test_a_409_for_other_text_is_refused_not_dropped(cloud: FakeSmsGate) -> None:
    """A reset store reuses outbox ids: the same number with another text is not our SMS."""
    async with connected(cloud) as gateway:
        await gateway.send(OutboundSms(1, CUSTOMER, "old install"))
        with pytest.raises(Terminal, match="with other text") as caught:
            await gateway.send(OutboundSms(1, CUSTOMER, "new install"))
    assert caught.value.raw_status == "409"
    assert "set a new message_id_prefix" in caught.value.reason
    [state] = [r for r in cloud.requests if r.method == "GET"]
    assert state.query == {"includeContent": "true"}  # the text comes only when asked for


async def test_a_409_whose_text_is_hashed_or_absent_counts_as_accepted(
    cloud: FakeSmsGate,
) -> None:
    async with connected(cloud) as gateway:
        await gateway.send(OutboundSms(2, CUSTOMER, "first"))
        hashed = {
            "id": "smsbridge-2",
            "state": "Sent",
            "recipients": [{"phoneNumber": "6f1ed002ab", "state": "Sent"}],
            "states": {},
            "isHashed": True,
            "isEncrypted": False,
            "hashedMessage": {"hash": "0a1b2c"},
        }
        cloud.fail_next("state", status=200, body=hashed)
        assert (await gateway.send(OutboundSms(2, CUSTOMER, "other"))).raw_status == "Sent"
        # An answer without the text (a server that ignores includeContent): numbers decide.
        bare = hashed | {"isHashed": False, "recipients": [{"phoneNumber": CUSTOMER}]}
        del bare["hashedMessage"]
        cloud.fail_next("state", status=200, body=bare)
        assert (await gateway.send(OutboundSms(2, CUSTOMER, "other"))).raw_status == "Sent"


async def test_timeout_after_the_gateway_acted_is_ambiguous_and_the_retry_sends_nothing_twice(
    cloud: FakeSmsGate,
) -> None:
    cloud.fail_next("send", status=200, delay=1.0)  # processed, answered too late
    async with connected(cloud, timeout=0.3) as gateway:
        with pytest.raises(Ambiguous):
            await gateway.send(OutboundSms(5, CUSTOMER, "slow"))
        result = await gateway.send(OutboundSms(5, CUSTOMER, "slow"))
    assert result.provider_id == "smsbridge-5"
    assert len(cloud.messages) == 1


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        ({"status": 429, "retry_after": 7}, RateLimited, "rate limit"),
        ({"status": 500}, Ambiguous, "injected fault"),
        (
            {
                "status": 503,
                "body": {
                    "error": "QueueLimitExceeded",
                    "message": "queue limits exceeded: too many pending messages: 10 / 10",
                },
            },
            Retryable,
            "too many pending messages",
        ),
        ({"status": 202, "raw": b'{"id":"smsbridge-4","sta'}, Ambiguous, "malformed"),
        ({"status": 202, "raw": b"<html>proxy</html>"}, Ambiguous, "malformed"),
    ],
)
async def test_send_failures_are_retryable_with_the_right_class(
    cloud: FakeSmsGate, fault: dict[str, Any], error: type[Exception], words: str
) -> None:
    cloud.fail_next("send", **fault)
    async with connected(cloud) as gateway:
        with pytest.raises(error, match=words) as caught:
            await gateway.send(OutboundSms(4, CUSTOMER, "x"))
        assert type(caught.value) is error
        if isinstance(caught.value, RateLimited):
            assert caught.value.retry_after == 7
        result = await gateway.send(OutboundSms(4, CUSTOMER, "x"))  # the core's retry
    assert result.provider_id == "smsbridge-4"
    assert len(cloud.messages) == 1


async def test_auth_failure_and_rejected_number_are_terminal_without_secrets(
    cloud: FakeSmsGate,
) -> None:
    async with connected(cloud, password="wrong-secret-pw") as gateway:
        with pytest.raises(Terminal, match="HTTP 401") as caught:
            await gateway.send(OutboundSms(1, CUSTOMER, "x"))
    assert "wrong-secret-pw" not in str(caught.value)
    async with connected(cloud) as gateway:
        with pytest.raises(Terminal, match="invalid phone number") as rejected:
            await gateway.send(OutboundSms(2, "BANK", "x"))
    assert rejected.value.raw_status == "400"
    assert cloud.messages == {}


async def test_jwt_is_obtained_and_renewed_once_revoked(cloud: FakeSmsGate) -> None:
    async with connected(cloud, auth="jwt") as gateway:
        await gateway.send(OutboundSms(1, CUSTOMER, "a"))
        cloud.tokens.clear()  # revoked on the server
        await gateway.send(OutboundSms(2, CUSTOMER, "b"))
    assert [(r.path.rsplit("/", 1)[-1], r.auth, r.status) for r in cloud.requests] == [
        ("token", "basic", 201),
        ("messages", "bearer", 202),
        ("messages", "none", 401),
        ("token", "basic", 201),
        ("messages", "bearer", 202),
    ]
    assert cloud.requests[0].body["scopes"][0] == "messages:send"


# webhooks -------------------------------------------------------------------------------------


async def test_documented_received_event_becomes_an_inbound_sms(cloud: FakeSmsGate) -> None:
    async with connected(cloud) as gateway:
        events = gateway.parse_webhook(signed(payload("sms_received")))
        legacy = gateway.parse_webhook(signed(payload("sms_received_legacy")))
    [sms] = events.inbound
    assert events.event_id == "Ey6ECgOkVVFjz3CL48B8C"
    assert (sms.sender, sms.text, sms.sim, sms.device) == (
        "+16505551212",
        "Android is always a sweet treat!",
        1,
        "ffffffffceb0b1db0000018e937c815b",
    )
    assert sms.received_at == datetime(2024, 6, 22, 8, 46, 11, tzinfo=UTC)
    assert legacy.inbound[0].sender == "+16505551212"  # before `sender`, only `phoneNumber`


async def test_same_text_twice_is_two_messages_by_webhook_and_by_inbox(
    local: FakeSmsGate,
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=1)
    first = local.receive_sms(CUSTOMER, "ok", at=at)
    second = local.receive_sms(CUSTOMER, "ok", at=at + timedelta(seconds=30))
    assert first.id == second.id  # the vendor's content-based id repeats
    async with connected(local, receive="webhook") as gateway:
        hooked = [
            gateway.parse_webhook(
                signed(envelope("sms:received", local.received_payload(row), f"e{i}"))
            ).inbound[0]
            for i, row in enumerate((first, second))
        ]
    async with connected(local, receive="poll") as gateway:
        assert isinstance(gateway, SmsGateLocal)
        polled = await gateway.poll_inbound(at - timedelta(minutes=1))
    assert hooked[0].provider_id != hooked[1].provider_id
    assert len({s.provider_id for s in polled}) == 2


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"receive": "both"}, "receive: both is not possible with SMSGate"),
        ({"receive": "webhook", "safety_poll_interval": 600}, "safety_poll_interval must be 0"),
    ],
)
def test_webhook_and_inbox_are_never_mixed(
    local: FakeSmsGate, extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        SmsGateConfig.model_validate(section(local, **extra))


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"key": "not-the-key"}, Unauthenticated, "bad signature"),
        ({"skew": -360}, Unauthenticated, "stale"),
        ({"skew": 360}, Unauthenticated, "future"),
    ],
)
async def test_bad_signature_or_timestamp_is_rejected(
    cloud: FakeSmsGate, change: dict[str, Any], error: type[Exception], words: str
) -> None:
    async with connected(cloud) as gateway:
        with pytest.raises(error, match=words):
            gateway.parse_webhook(signed(payload("sms_received"), **change))
        unsigned = WebhookRequest("phone", None, {}, payload("sms_received"), time.time())
        with pytest.raises(Unauthenticated, match="missing X-Signature"):
            gateway.parse_webhook(unsigned)
        tampered = signed(payload("sms_received"))
        body = tampered.body.replace(b"sweet", b"sour!")
        with pytest.raises(Unauthenticated):
            gateway.parse_webhook(
                WebhookRequest("phone", None, tampered.headers, body, time.time())
            )


async def test_url_token_guards_the_webhook(cloud: FakeSmsGate) -> None:
    async with connected(cloud, signing_key=None, webhook_token=TOKEN) as gateway:
        good = WebhookRequest("phone", TOKEN, {}, payload("sms_received"), time.time())
        assert len(gateway.parse_webhook(good).inbound) == 1
        for token in (None, "x" + TOKEN[1:]):
            bad = WebhookRequest("phone", token, {}, payload("sms_received"), time.time())
            with pytest.raises(Forbidden):
                gateway.parse_webhook(bad)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", BadRequest),
        (b'{"id":"e","event":"sms:received","payload":{"message":"x"', BadRequest),
        (b"[]", BadRequest),
        (envelope("sms:received", {"message": "no sender"}), Unprocessable),
        (envelope("sms:sent", {"sentAt": "2025-01-01T00:00:00Z"}), Unprocessable),
        (
            envelope("sms:received", {"sender": "+1555", "message": 1, "receivedAt": "x"}),
            Unprocessable,
        ),
    ],
)
async def test_malformed_webhooks_get_a_clear_4xx(
    cloud: FakeSmsGate, body: bytes, error: type[Exception]
) -> None:
    async with connected(cloud) as gateway:
        with pytest.raises(error):
            gateway.parse_webhook(signed(body))


async def test_status_events_map_and_count_parts_out_of_order(cloud: FakeSmsGate) -> None:
    delivered = json.loads(payload("sms_delivered"))
    async with connected(cloud) as gateway:

        def parse(body: bytes) -> tuple[Status, str, str | None]:
            [update] = gateway.parse_webhook(signed(body)).updates
            assert update.provider_id == "smsbridge-7"
            return update.status, update.raw_status, update.reason

        # A delivery receipt for part 1 may come before "sent": sent, not delivered yet.
        assert parse(payload("sms_delivered")) == (Status.SENT, "sms:delivered (1/2 parts)", None)
        assert parse(payload("sms_delivered"))[1] == "sms:delivered (1/2 parts)"  # redelivered
        assert parse(payload("sms_sent")) == (Status.SENT, "sms:sent", None)
        part2 = envelope("sms:delivered", delivered["payload"], "Dlvr0000000000000002")
        assert parse(part2) == (Status.DELIVERED, "sms:delivered", None)
        assert parse(payload("sms_failed")) == (
            Status.FAILED,
            "sms:failed",
            "RESULT_ERROR_NO_SERVICE",
        )
        foreign = envelope("sms:sent", {"messageId": "someone-elses", "partsCount": 1})
        assert gateway.parse_webhook(signed(foreign)).ignored == "message not sent by this bridge"
        ping = gateway.parse_webhook(signed(envelope("system:ping", {"health": {}})))
        assert (ping.ignored, ping.event_id) == ("event 'system:ping' is not bridged", "evt-1")


async def test_mms_attachments_inline_or_by_url(local: FakeSmsGate) -> None:
    async with connected(local) as gateway:
        events = gateway.parse_webhook(signed(payload("mms_downloaded")))
        [sms] = events.inbound
        assert (sms.text, sms.sim) == ("Look at this", 2)
        inline, linked = sms.attachments
        assert (inline.content_type, inline.name, inline.data) == (
            "image/png",
            "dot.png",
            b"\x89PNG",
        )
        assert linked.url == f"{local.base_url}/inbox/mms-4711/attachments/13"
        with pytest.raises(Terminal, match="another server"):
            await gateway.fetch_media("http://evil.example/inbox/x/attachments/1")
        bad = json.loads(payload("mms_downloaded"))
        bad["payload"]["attachments"][0]["data"] = "not base64!"
        with pytest.raises(Unprocessable, match="base64"):
            gateway.parse_webhook(signed(json.dumps(bad).encode()))


async def test_mms_in_cloud_mode_without_data_says_so(cloud: FakeSmsGate) -> None:
    row = cloud.receive_mms(CUSTOMER, "pic", [("a.jpg", "image/jpeg", b"\xff\xd8")])
    async with connected(cloud) as gateway:
        body = envelope("mms:downloaded", cloud.received_payload(row, inline=False))
        [sms] = gateway.parse_webhook(signed(body)).inbound
    assert sms.attachments == ()
    assert sms.text == "pic\n[attachment not available: a.jpg]"


# polling -------------------------------------------------------------------------------------


async def test_only_the_local_server_lists_the_inbox(
    local: FakeSmsGate, cloud: FakeSmsGate
) -> None:
    # The cloud has no inbox: no poll, and no safety net under its webhooks.
    async with connected(cloud) as gateway:
        assert not isinstance(gateway, PollsInbound)
    async with connected(local, receive="poll") as gateway:
        assert isinstance(gateway, PollsInbound)
        assert gateway.date_margin == 0  # createdAt carries its offset


async def test_inbox_poll_pages_from_since_and_fetches_media(local: FakeSmsGate) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    local.receive_sms("+15550000000", "too old", at=old)
    start = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(501):  # more than one page of 500
        local.receive_sms(CUSTOMER, f"m{i}", at=start + timedelta(seconds=i))
    local.inbox.append(
        type(local.inbox[0])("data1", "DATA_SMS", CUSTOMER, "AAEC", 1, start)  # machine traffic
    )
    local.receive_mms(CUSTOMER, "photo", [("p.png", "image/png", b"PNGDATA")], sim=2)
    since = datetime.now(UTC) - timedelta(hours=1)
    async with connected(local, receive="poll") as gateway:
        assert isinstance(gateway, SmsGateLocal)
        first = await gateway.poll_inbound(since)
        assert len(first) == 502 and "too old" not in {s.text for s in first}
        assert [r.query["offset"] for r in local.requests if r.path == "/inbox"] == ["0", "500"]
        # The phone is asked from exactly the moment the core chose.
        asked = {
            datetime.fromisoformat(r.query["from"]) for r in local.requests if r.path == "/inbox"
        }
        assert asked == {since}
        [photo] = [s for s in first if s.attachments]
        assert (photo.sim, photo.attachments[0].name) == (2, "p.png")
        url = photo.attachments[0].url
        assert url is not None
        assert await gateway.fetch_media(url) == (b"PNGDATA", "application/octet-stream")
        # A row filed late, under a time before everything polled so far, is in the next listing.
        local.receive_sms(CUSTOMER, "late", at=start - timedelta(minutes=5))
        again = await gateway.poll_inbound(since)
    assert "late" in {s.text for s in again}
    assert len({s.provider_id for s in again}) == len(again) == 503


async def test_a_rate_limited_media_download_says_when_to_retry(local: FakeSmsGate) -> None:
    mms = local.receive_mms(CUSTOMER, "photo", [("p.png", "image/png", b"PNGDATA")])
    url = f"{local.base_url}/inbox/{mms.id}/attachments/100"
    async with connected(local, receive="poll") as gateway:
        local.fail_next("attachment", status=429, retry_after=12)
        with pytest.raises(RateLimited, match="rate limit") as caught:
            await gateway.fetch_media(url)
        assert caught.value.retry_after == 12.0
        local.fail_next("attachment", status=503)
        with pytest.raises(Retryable, match="HTTP 503") as failed:
            await gateway.fetch_media(url)
        assert not isinstance(failed.value, RateLimited)
        assert await gateway.fetch_media(url) == (b"PNGDATA", "application/octet-stream")


async def test_inbox_poll_errors_are_retryable(local: FakeSmsGate) -> None:
    async with connected(local, receive="poll") as gateway:
        assert isinstance(gateway, SmsGateLocal)
        local.fail_next("inbox", status=500)
        with pytest.raises(Retryable):
            await gateway.poll_inbound(datetime.now(UTC))
        local.fail_next("inbox", status=200, raw=b'[{"id":')
        with pytest.raises(Retryable, match="malformed"):
            await gateway.poll_inbound(datetime.now(UTC))
        local.fail_next("inbox", status=200, body={"not": "a list"})
        with pytest.raises(Retryable, match="unexpected"):
            await gateway.poll_inbound(datetime.now(UTC))


async def test_status_poll_maps_states_and_skips_unknown_ids(cloud: FakeSmsGate) -> None:
    async with connected(cloud) as gateway:
        for i in (1, 2, 3):
            await gateway.send(OutboundSms(i, CUSTOMER, f"m{i}"))
        cloud.set_state("smsbridge-2", "Delivered")
        cloud.set_state("smsbridge-3", "Failed", "RESULT_ERROR_RADIO_OFF")
        rows = [outbox(f"smsbridge-{i}") for i in (1, 2, 3)] + [outbox("smsbridge-404")]
        updates = await gateway.poll_status(rows)
        assert [(u.provider_id, u.status, u.raw_status, u.reason) for u in updates] == [
            ("smsbridge-2", Status.DELIVERED, "Delivered", None),
            ("smsbridge-3", Status.FAILED, "Failed", "RESULT_ERROR_RADIO_OFF"),
        ]
        cloud.fail_next("state", status=502)
        with pytest.raises(Retryable):
            await gateway.poll_status(rows)


async def test_history_merges_sent_and_received(local: FakeSmsGate) -> None:
    local.receive_sms(CUSTOMER, "question", at=datetime.now(UTC) - timedelta(minutes=5))
    local.receive_sms("+15559876543", "someone else", at=datetime.now(UTC) - timedelta(minutes=4))
    async with connected(local) as gateway:
        await gateway.send(OutboundSms(1, CUSTOMER, "answer"))
        await gateway.send(OutboundSms(2, "+15559876543", "not this one"))
        items = await gateway.history(CUSTOMER, 10)
    assert [(i.outgoing, i.text) for i in items] == [(False, "question"), (True, "answer")]


# webhook registration and config ----------------------------------------------------------


async def test_webhooks_are_registered_once_per_event_with_stable_ids(cloud: FakeSmsGate) -> None:
    public = "http://127.0.0.1:8123/webhooks/sms/phone"
    for _ in range(2):
        async with connected(cloud, public, register_webhooks=True, webhook_token=TOKEN):
            pass
    assert sorted(cloud.webhooks) == sorted(
        webhook_id("phone", e)
        for e in ("sms:received", "mms:downloaded", "sms:sent", "sms:delivered", "sms:failed")
    )
    assert {h["url"] for h in cloud.webhooks.values()} == {f"{public}/{TOKEN}"}
    assert all(len(i) <= 36 for i in cloud.webhooks)


async def test_registration_refused_by_the_vendor_raises(cloud: FakeSmsGate) -> None:
    with pytest.raises(Terminal, match="must be https"):
        async with connected(
            cloud, "http://bridge.example/webhooks/sms/phone", register_webhooks=True
        ):
            pass
    with pytest.raises(ConfigError, match=r"server\.public_url"):
        create(SmsGateConfig.model_validate(section(cloud, register_webhooks=True)), None)


def _problems(fake_url: str, **gateway: Any) -> str:
    base = {
        "name": "phone",
        "type": "smsgate",
        "base_url": fake_url,
        "username": "u",
        "password": "p",
        "receive": "webhook",
        "signing_key": KEY,
    } | gateway
    data = {
        "store": {"url": "sqlite:///unused.db"},
        "gateways": [{k: v for k, v in base.items() if v is not None}],
        "chats": [{"name": "c", "type": "telegram", "bot_token": "1:x", "chat_id": -1001}],
        "routes": [{"gateway": "phone", "chat": "c"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ={})
    return str(caught.value)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"password": None}, "needs username and password"),
        ({"mode": "local", "base_url": None}, "mode: local needs base_url"),
        ({"receive": "poll"}, "needs mode: local"),
        ({"signing_key": None}, "needs signing_key"),
        ({"webhook_token": "short"}, "at least 16 characters"),
        ({"sim": 4}, "less than or equal to 3"),
        ({"mode": "local", "auth": "jwt"}, "only takes auth: basic"),
        ({"register_webhooks": True, "receive": "poll", "mode": "local"}, "register_webhooks"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_config_errors_are_clear(change: dict[str, Any], words: str) -> None:
    problems = _problems("http://192.168.1.5:8080", **change)
    assert "gateways" in problems
    assert words in problems


def test_a_good_config_passes_and_knows_its_api_base() -> None:
    parsed = SmsGateConfig.model_validate(
        {
            "name": "p",
            "type": "smsgate",
            "username": "u",
            "password": "p",
            "receive": "poll",
            "mode": "local",
            "base_url": "http://192.168.1.5:8080",
        }
    )
    assert parsed.api_base == "http://192.168.1.5:8080"
    cloud_config = parsed.model_copy(update={"mode": "cloud", "base_url": None})
    assert cloud_config.api_base == "https://api.sms-gate.app/3rdparty/v1"


# -- device status (the watchdog) ---------------------------------------------------------------


async def test_device_status_on_the_phone_reads_its_health(local: FakeSmsGate) -> None:
    async with connected(local) as gateway:
        [phone] = await gateway.device_status()
        assert (phone.online, phone.battery, phone.last_seen) == (True, 87, None)
        # A failing check answers 503 with the same body: news about the phone, not an outage.
        local.battery, local.online = 4, False
        [phone] = await gateway.device_status()
        assert (phone.online, phone.battery) == (False, 4)
        assert [r.status for r in local.requests if r.path == "/health"] == [200, 503]
        local.fail_next("health", status=500)
        with pytest.raises(Retryable, match="HTTP 500"):
            await gateway.device_status()


async def test_device_status_in_the_cloud_lists_devices_last_seen(cloud: FakeSmsGate) -> None:
    cloud.last_seen = time.time() - 900
    async with connected(cloud) as gateway:
        [device] = await gateway.device_status()
        assert device.online is None and device.battery is None
        assert device.last_seen is not None
        assert abs(device.last_seen.timestamp() - (time.time() - 900)) < 5
        asked = [r for r in cloud.requests if r.path == "/3rdparty/v1/devices"]
        assert asked and asked[-1].auth == "basic"
    async with connected(cloud, password="wrong") as gateway:
        with pytest.raises(Terminal, match="HTTP 401"):
            await gateway.device_status()
