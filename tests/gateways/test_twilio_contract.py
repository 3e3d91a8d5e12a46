"""The Twilio connector against the fake Twilio, at the HTTP boundary (both directions)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from harness import per_module
from pydantic import SecretStr
from starlette.responses import Response

from bridge.config import parse_config
from bridge.errors import (
    Ambiguous,
    BadRequest,
    ConfigError,
    Forbidden,
    OptedOut,
    RateLimited,
    Retryable,
    Terminal,
    Unauthenticated,
    Unprocessable,
)
from bridge.models import OutboundSms, Outbox, Status, WebhookRequest
from bridge.testing.fake_harness import WebhookReceiver
from connectors.sms.twilio import webhooks as hooks
from connectors.sms.twilio.client import Twilio, TwilioConfig
from connectors.sms.twilio.fake import AUTH_TOKEN, NUMBER, SERVICE_SID, FakeTwilio, signature

PAYLOADS = Path(__file__).parent / "payloads" / "twilio"
CUSTOMER = "+14155552345"
TOKEN = "url-token-0123456789abcdef"
pytestmark = pytest.mark.asyncio(loop_scope="module")


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    data.pop("_source", None)
    return data


def hooks_answer() -> bytes:
    return Twilio.webhook_answer.body


_served, fake = per_module("fake", FakeTwilio, FakeTwilio.reset)
_receiver, receiver = per_module(
    "receiver",
    lambda: WebhookReceiver(
        "tw", lambda _: Response(hooks_answer(), media_type="text/xml")
    ).serving(),
    lambda receiver: receiver.got.clear(),
)


def config(fake: FakeTwilio, **overrides: Any) -> TwilioConfig:
    section = fake.section("tw", from_number=NUMBER, receive="webhook", timeout=2)
    section.update(overrides)
    return TwilioConfig.model_validate({k: v for k, v in section.items() if v is not None})


@pytest_asyncio.fixture(loop_scope="module")
async def gw(fake: FakeTwilio, receiver: WebhookReceiver) -> AsyncIterator[Twilio]:
    gateway = Twilio(config(fake), receiver.url)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def started(gateway: Twilio) -> Twilio:
    await gateway.start()
    return gateway


def hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def sms(text: str = "on my way", to: str = CUSTOMER, id: int = 1, **kw: Any) -> OutboundSms:
    return OutboundSms(id=id, to=to, text=text, **kw)


def row(sid: str, status: Status = Status.QUEUED, raw: str = "queued") -> Outbox:
    return Outbox(1, 1, "tw", CUSTOMER, "x", status, provider_id=sid, raw_status=raw)


# -- signature ---------------------------------------------------------------------------------


async def test_signature_matches_twilios_published_vectors() -> None:
    v = payload("signature_vectors.json")
    for example in ("docs_example", "sdk_example"):
        params = v[example]["params"].items()
        assert hooks.compute_signature(v["auth_token"], v["url"], params) == v[example]["signature"]
        assert signature(v["auth_token"], v["url"], params) == v[example]["signature"]
    pairs = [tuple(p) for p in v["sdk_duplicates"]["pairs"]]
    assert (
        hooks.compute_signature(v["auth_token"], v["url"], pairs)
        == (v["sdk_duplicates"]["signature"])
    )


@pytest.mark.parametrize("key", ["signature", "signature_with_port_443"])
async def test_verification_accepts_the_url_with_or_without_the_default_port(key: str) -> None:
    v = payload("signature_vectors.json")
    body = "&".join(f"{k}={v2}" for k, v2 in v["sdk_example"]["params"].items()).replace("+", "%2B")
    request = WebhookRequest(
        "tw",
        None,
        {"x-twilio-signature": v["sdk_example"][key]},
        body.encode(),
        time.time(),
        url=v["url"],
    )
    assert hooks.verify(SecretStr(v["auth_token"]), request) != []
    forged = WebhookRequest(
        "tw", None, {"x-twilio-signature": v["sdk_example"][key]}, b"Digits=9", 0.0, url=v["url"]
    )
    with pytest.raises(Unauthenticated):
        hooks.verify(SecretStr(v["auth_token"]), forged)


async def test_our_vectors_agree_with_the_fake_and_change_with_every_input() -> None:
    params = {"Body": "héllo & bye+", "From": "+14155552345", "NumMedia": "0", "A": ""}
    ours = hooks.compute_signature("tok", "https://x.example/hook?a=1", params.items())
    assert ours == signature("tok", "https://x.example/hook?a=1", params.items())
    assert ours != hooks.compute_signature("tok2", "https://x.example/hook?a=1", params.items())
    assert ours != hooks.compute_signature("tok", "https://x.example/hook?a=2", params.items())
    changed = {**params, "Body": "hello & bye+"}
    assert ours != hooks.compute_signature("tok", "https://x.example/hook?a=1", changed.items())


# -- sending -----------------------------------------------------------------------------------


async def test_send_posts_the_documented_form_and_returns_the_sid(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    result = await gw.send(sms("on my way"))
    [message] = fake.sent
    assert (result.provider_id, result.status, result.raw_status) == (
        message.sid,
        Status.QUEUED,
        "queued",
    )
    assert (message.to, message.from_, message.body) == (CUSTOMER, NUMBER, "on my way")
    assert message.status_callback == receiver.url
    [request] = fake.requests
    assert request.authorized and request.status == 201


async def test_fake_resources_have_every_documented_field(fake: FakeTwilio) -> None:
    auth = (fake.account_sid, fake.auth_token)
    async with httpx.AsyncClient(base_url=fake.base_url, auth=auth, trust_env=False) as client:
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        created = await client.post(path, data={"To": CUSTOMER, "From": NUMBER, "Body": "hi"})
        listing = (await client.get(path)).json()
        refused = await client.post(path, data={"To": "+1555", "From": NUMBER, "Body": "hi"})
    documented = payload("message_list.json")
    assert created.status_code == 201
    assert set(payload("message_created.json")) <= set(created.json())
    assert set(documented) <= set(listing)
    assert set(documented["messages"][0]) <= set(listing["messages"][0])
    assert hooks.rfc2822(listing["messages"][0]["date_created"]) is not None
    assert set(payload("errors.json")["21211"]) == set(refused.json())
    assert refused.status_code == 400


async def test_reply_leaves_from_the_number_that_received_and_through_a_service(
    fake: FakeTwilio, receiver: WebhookReceiver
) -> None:
    fake.numbers.append("+15017122662")
    gateway = await started(Twilio(config(fake, messaging_service_sid=SERVICE_SID), None))
    try:
        result = await gateway.send(sms(device="+15017122662"))
    finally:
        await gateway.stop()
    [message] = fake.sent
    assert message.from_ == "+15017122662" and message.messaging_service_sid == SERVICE_SID
    assert message.status_callback is None  # no public URL: status comes from polling
    assert (result.status, result.raw_status) == (Status.QUEUED, "accepted")


async def test_status_callback_url_carries_the_webhook_token(fake: FakeTwilio) -> None:
    gateway = await started(Twilio(config(fake, webhook_token=TOKEN), "https://b.example/w/tw"))
    try:
        await gateway.send(sms())
    finally:
        await gateway.stop()
    assert fake.sent[0].status_callback == f"https://b.example/w/tw/{TOKEN}"
    # Polling only: the bridge routes no webhooks for it, so Twilio is not asked to call back.
    polling = await started(Twilio(config(fake, receive="poll"), "https://b.example/w/tw"))
    try:
        await polling.send(sms())
    finally:
        await polling.stop()
    assert fake.sent[1].status_callback is None


@pytest.mark.parametrize(
    ("to", "setup", "code", "words"),
    [
        ("+1555", None, "21211", "Invalid 'To' Phone Number"),
        (CUSTOMER, "unsubscribed", "21610", "unsubscribed recipient"),
    ],
)
async def test_rejected_number_is_terminal_with_twilios_code_and_words(
    fake: FakeTwilio, gw: Twilio, to: str, setup: str | None, code: str, words: str
) -> None:
    if setup == "unsubscribed":
        fake.unsubscribed.add(to)
    with pytest.raises(Terminal) as caught:
        await gw.send(sms(to=to))
    assert caught.value.raw_status == code
    assert words in caught.value.reason and f"error {code}" in caught.value.reason
    assert "twilio.com/docs" not in caught.value.reason  # more_info is a URL: left out
    assert isinstance(caught.value, OptedOut) == (code == "21610")
    assert fake.sent == []


@pytest.mark.parametrize(("stop", "start"), [("STOP", "START"), (" quit\n", "unstop")])
async def test_a_stop_texted_to_twilio_refuses_sends_until_a_start(
    fake: FakeTwilio, gw: Twilio, stop: str, start: str
) -> None:
    fake.receive_sms(CUSTOMER, stop)
    with pytest.raises(OptedOut):
        await gw.send(sms(to=CUSTOMER))
    fake.receive_sms(CUSTOMER, "stop it please")  # not a keyword: nothing changes
    fake.receive_sms(CUSTOMER, start)
    await gw.send(sms(to=CUSTOMER))
    assert len(fake.sent) == 1


async def test_too_long_body_is_terminal(fake: FakeTwilio, gw: Twilio) -> None:
    with pytest.raises(Terminal) as caught:
        await gw.send(sms("x" * 1601))
    assert caught.value.raw_status == "21617"


async def test_wrong_auth_token_is_terminal_and_never_echoes_the_secret(fake: FakeTwilio) -> None:
    wrong = "wrong-token-abcdefghijklmnop"
    gateway = await started(Twilio(config(fake, auth_token=wrong), None))
    try:
        with pytest.raises(Terminal) as caught:
            await gateway.send(sms())
    finally:
        await gateway.stop()
    assert "credentials" in caught.value.reason and "20003" in caught.value.reason
    assert wrong not in str(caught.value) and AUTH_TOKEN not in str(caught.value)
    assert fake.sent == [] and not fake.requests[0].authorized


async def test_429_is_rate_limited_with_retry_after_then_recovers(
    fake: FakeTwilio, gw: Twilio
) -> None:
    fake.fail_next("create", status=429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await gw.send(sms())
    assert caught.value.retry_after == 7.0 and "20429" in caught.value.reason
    assert fake.sent == []
    assert (await gw.send(sms())).provider_id == fake.sent[0].sid


@pytest.mark.parametrize(("status", "error"), [(500, Ambiguous), (503, Retryable)])
async def test_5xx_on_send_is_retryable_and_500_may_have_sent(
    fake: FakeTwilio, gw: Twilio, status: int, error: type[Exception]
) -> None:
    fake.fail_next("create", status=status)
    with pytest.raises(error) as caught:
        await gw.send(sms())
    assert type(caught.value) is error
    assert f"HTTP {status}" in str(caught.value)
    assert (await gw.send(sms())).provider_id is not None


@pytest.mark.parametrize(
    "raw", [b'{"sid": "SM1", "status": "que', b"<html>oops</html>", b"[]", b'{"status":"queued"}']
)
async def test_malformed_or_truncated_create_answer_is_ambiguous(
    fake: FakeTwilio, gw: Twilio, raw: bytes
) -> None:
    fake.fail_next("create", status=201, raw=raw)
    with pytest.raises(Ambiguous) as caught:
        await gw.send(sms())
    assert "Twilio" in caught.value.reason


async def test_timeout_after_twilio_created_it_is_ambiguous_and_reconciled(
    fake: FakeTwilio, gw: Twilio
) -> None:
    before = datetime.now(UTC)
    fake.fail_next("create", status=200, delay=3)  # created, answered after our 2 s timeout
    with pytest.raises(Ambiguous):
        await gw.send(sms("are you there?"))
    [message] = fake.sent
    assert message.date_sent is None  # still queued: DateSent filters cannot see it
    assert await gw.find_sent(sms("are you there?"), before) == message.sid
    assert await gw.find_sent(sms("are you there?"), before, frozenset({message.sid})) is None
    assert await gw.find_sent(sms("something else"), before) is None


async def test_reconcile_finds_a_sent_message_across_pages_and_ignores_older_ones(
    fake: FakeTwilio, gw: Twilio
) -> None:
    old = await gw.send(sms("same text"))
    fake.set_status(str(old.provider_id), "delivered")
    fake.message(str(old.provider_id)).date_created -= 600
    since = datetime.now(UTC) - timedelta(seconds=60)
    first = await gw.send(sms("same text"))
    for index in range(5):
        await gw.send(sms(f"other {index}"))
    for message in fake.sent:
        fake.set_status(message.sid, "sent")
    fake.max_page_size = 2
    assert await gw.find_sent(sms("same text"), since) == first.provider_id
    assert sum(1 for r in fake.requests if r.method == "GET") >= 3  # it followed next_page_uri
    assert await gw.find_sent(sms("same text"), since, frozenset({str(first.provider_id)})) is None


# -- webhooks ----------------------------------------------------------------------------------


async def test_incoming_sms_webhook_is_verified_and_translated(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    message = fake.receive_sms(CUSTOMER, "Hello & welcome +1")
    response = await fake.deliver_inbound(receiver.url, message)
    assert response.text == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    events = gw.parse_webhook(receiver.got[0])
    [inbound] = events.inbound
    assert (inbound.provider_id, inbound.sender, inbound.text) == (
        message.sid,
        CUSTOMER,
        "Hello & welcome +1",
    )
    assert inbound.device == NUMBER and inbound.attachments == ()
    # A redelivery carries the same MessageSid: the core's (gateway, provider_id) key drops it.
    await fake.deliver_inbound(receiver.url, message)
    assert gw.parse_webhook(receiver.got[1]).inbound[0].provider_id == message.sid


async def test_incoming_mms_lists_media_that_fetch_media_downloads(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    jpeg, pdf = b"\xff\xd8\xff\xe0fake-jpeg", b"%PDF-1.4 fake"
    message = fake.receive_sms(CUSTOMER, "", media=[("image/jpeg", jpeg), ("application/pdf", pdf)])
    await fake.deliver_inbound(receiver.url, message)
    [inbound] = gw.parse_webhook(receiver.got[0]).inbound
    assert [(a.content_type, a.data) for a in inbound.attachments] == [
        ("image/jpeg", None),
        ("application/pdf", None),
    ]
    assert inbound.attachments[0].name == f"{message.sid}-0.jpg"
    fetched = [await gw.fetch_media(str(a.url)) for a in inbound.attachments]
    # The fake's storage refuses requests that carry credentials: these came without.
    assert fetched == [(jpeg, "image/jpeg"), (pdf, "application/pdf")]


async def test_documented_incoming_mms_form_is_understood(fake: FakeTwilio) -> None:
    form = payload("incoming_mms.json")
    url = "https://bridge.example/webhooks/sms/tw"
    body = "&".join(f"{k}={v}" for k, v in _quoted(form))
    request = WebhookRequest(
        "tw",
        None,
        {"x-twilio-signature": signature("tok", url, form.items())},
        body.encode(),
        time.time(),
        url=url,
    )
    [inbound] = hooks.parse("tw", SecretStr("tok"), None, request).inbound
    assert inbound.provider_id == form["MessageSid"] and inbound.sender == form["From"]
    assert [a.url for a in inbound.attachments] == [form["MediaUrl0"], form["MediaUrl1"]]


def _quoted(form: dict[str, str]) -> list[tuple[str, str]]:
    from urllib.parse import quote

    return [(quote(k, safe=""), quote(v, safe="")) for k, v in form.items()]


async def test_media_url_off_the_api_host_is_refused(gw: Twilio) -> None:
    with pytest.raises(Terminal):
        await gw.fetch_media("https://evil.example/2010-04-01/Accounts/x/Media/ME1")


async def test_get_webhook_is_verified_over_the_url(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    message = fake.receive_sms(CUSTOMER, "by GET")
    await fake.deliver_inbound(receiver.url, message, method="GET")
    assert gw.parse_webhook(receiver.got[0]).inbound[0].text == "by GET"


@pytest.mark.parametrize(
    "forge",
    [{"auth_token": "not-the-token"}, {"signature_header": ""}, {"signature_header": "abc="}],
    ids=["other-token", "missing", "garbage"],
)
async def test_unsigned_or_forged_webhooks_are_unauthenticated(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver, forge: dict[str, str]
) -> None:
    message = fake.receive_sms(CUSTOMER, "forged")
    await fake.deliver_inbound(receiver.url, message, **forge)
    with pytest.raises(Unauthenticated) as caught:
        gw.parse_webhook(receiver.got[0])
    assert AUTH_TOKEN not in caught.value.reason


async def test_tampered_body_fails_the_signature(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    message = fake.receive_sms(CUSTOMER, "original")
    await fake.deliver_inbound(receiver.url, message)
    got = receiver.got[0]
    tampered = WebhookRequest(
        got.gateway,
        got.token,
        got.headers,
        got.body.replace(b"original", b"modified"),
        0.0,
        url=got.url,
    )
    with pytest.raises(Unauthenticated):
        gw.parse_webhook(tampered)


async def test_webhook_token_is_checked_before_anything_else(
    fake: FakeTwilio, receiver: WebhookReceiver
) -> None:
    gateway = Twilio(config(fake, webhook_token=TOKEN), None)
    message = fake.receive_sms(CUSTOMER, "guarded")
    await fake.deliver_inbound(f"{receiver.url}/{TOKEN}", message)
    await fake.deliver_inbound(f"{receiver.url}/wrong-token-0123456789", message)
    await fake.deliver_inbound(receiver.url, message)
    assert gateway.parse_webhook(receiver.got[0]).inbound[0].text == "guarded"
    for request in receiver.got[1:]:
        with pytest.raises(Forbidden):
            gateway.parse_webhook(request)


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        ({"MessageSid": "SM1", "Body": "x"}, Unprocessable, "From"),
        ({"From": CUSTOMER, "Body": "x"}, Unprocessable, "MessageSid"),
        ({"MessageSid": "SM1", "From": CUSTOMER, "NumMedia": "x"}, Unprocessable, "NumMedia"),
        ({"MessageSid": "SM1", "From": CUSTOMER, "NumMedia": "1"}, Unprocessable, "MediaUrl0"),
        ({"MessageStatus": "sent"}, Unprocessable, "MessageSid"),
    ],
)
async def test_signed_but_malformed_webhooks_get_clear_4xx(
    fake: FakeTwilio,
    gw: Twilio,
    receiver: WebhookReceiver,
    params: dict[str, str],
    error: type[Exception],
    words: str,
) -> None:
    await fake.post_signed(receiver.url, params)
    with pytest.raises(error) as caught:
        gw.parse_webhook(receiver.got[0])
    assert words in str(caught.value)


async def test_undecodable_body_is_a_bad_request(gw: Twilio, receiver: WebhookReceiver) -> None:
    request = WebhookRequest(
        "tw", None, {"x-twilio-signature": "x"}, b"Body=%ff%fe", 0.0, url=receiver.url
    )
    with pytest.raises(BadRequest):
        gw.parse_webhook(request)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("accepted", Status.QUEUED),
        ("queued", Status.QUEUED),
        ("sending", Status.QUEUED),
        ("sent", Status.SENT),
        ("delivered", Status.DELIVERED),
        ("read", Status.DELIVERED),
        ("partially_delivered", Status.SENT),
        ("undelivered", Status.FAILED),
        ("failed", Status.FAILED),
        ("canceled", Status.FAILED),
    ],
)
async def test_status_callbacks_map_to_the_common_model(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver, raw: str, status: Status
) -> None:
    result = await gw.send(sms())
    sid = str(result.provider_id)
    await fake.advance(sid, raw, error_code=30003 if status is Status.FAILED else None)
    events = gw.parse_webhook(receiver.got[0])
    [update] = events.updates
    assert (update.provider_id, update.status, update.raw_status) == (sid, status, raw)
    assert events.event_id == update.event_id == f"{sid}:{raw}"
    if raw in ("failed", "undelivered"):  # the documented carriers of ErrorCode
        assert update.reason == "Unreachable destination handset (Twilio error 30003)"
    elif status is Status.FAILED:
        assert update.reason == f"Twilio reported the message {raw}"
    else:
        assert update.reason is None


async def test_out_of_order_and_repeated_callbacks_keep_their_own_identity(
    fake: FakeTwilio, gw: Twilio, receiver: WebhookReceiver
) -> None:
    sid = str((await gw.send(sms())).provider_id)
    fake.set_status(sid, "delivered")
    await fake.deliver_status(sid)
    fake.set_status(sid, "sent")  # the late "sent" Twilio may still deliver
    await fake.deliver_status(sid)
    await fake.deliver_status(sid)  # and a retry of it
    updates = [gw.parse_webhook(r).updates[0] for r in receiver.got]
    assert [u.status for u in updates] == [Status.DELIVERED, Status.SENT, Status.SENT]
    assert updates[1].event_id == updates[2].event_id != updates[0].event_id


async def test_documented_undelivered_callback_and_unknown_codes() -> None:
    form = payload("status_undelivered.json")
    url = "https://bridge.example/webhooks/sms/tw"
    request = WebhookRequest(
        "tw",
        None,
        {"x-twilio-signature": signature("tok", url, form.items())},
        "&".join(f"{k}={v}" for k, v in _quoted(form)).encode(),
        0.0,
        url=url,
    )
    [update] = hooks.parse("tw", SecretStr("tok"), None, request).updates
    assert (update.status, update.raw_status) == (Status.FAILED, "undelivered")
    assert update.reason == "Unreachable destination handset (Twilio error 30003)"
    assert hooks.reason_for("39999", None, "failed") == (
        "Twilio reported the message failed (Twilio error 39999)"
    )


# -- polling -----------------------------------------------------------------------------------


async def test_polling_lists_whole_days_and_media_only_for_what_is_completed(
    fake: FakeTwilio, gw: Twilio
) -> None:
    now = time.time()
    fake.receive_sms(CUSTOMER, "days ago", at=now - 3 * 86400)
    first = fake.receive_sms(CUSTOMER, "first", at=now - 60)
    mms = fake.receive_sms("+14155550000", "look", media=[("image/png", b"\x89PNG")], at=now - 30)
    fake.receive_sms(CUSTOMER, "to another number", to="+15559990000", at=now - 20)
    await gw.send(sms("outbound is not inbound"))
    fake.max_page_size = 2
    since = hour_ago()
    messages = await gw.poll_inbound(since)
    assert {m.provider_id for m in messages} == {first.sid, mms.sid}
    assert fake.requests[-1].params["DateSent>"] == since.strftime("%Y-%m-%d")
    assert all(m.attachments == () for m in messages)
    media_paths = [r for r in fake.requests if r.path.endswith("/Media.json")]
    assert media_paths == []  # a listing costs no media calls: most rows are not new
    [plain] = await gw.complete_polled([m for m in messages if m.provider_id == first.sid])
    assert plain.attachments == ()
    assert not any(r.path.endswith("/Media.json") for r in fake.requests)
    [photo] = await gw.complete_polled([m for m in messages if m.provider_id == mms.sid])
    assert photo.attachments[0].content_type == "image/png"
    assert await gw.fetch_media(str(photo.attachments[0].url)) == (b"\x89PNG", "image/png")
    later = fake.receive_sms(CUSTOMER, "later")
    again = await gw.poll_inbound(since)
    assert {m.provider_id for m in again} == {first.sid, mms.sid, later.sid}


async def test_polling_through_a_messaging_service_takes_its_numbers(fake: FakeTwilio) -> None:
    gateway = await started(
        Twilio(config(fake, from_number=None, messaging_service_sid=SERVICE_SID), None)
    )
    try:
        ours = fake.receive_sms(CUSTOMER, "via service", to="+15550001111", service=True)
        fake.receive_sms(CUSTOMER, "not ours", to="+15550002222")
        messages = await gateway.poll_inbound(hour_ago())
    finally:
        await gateway.stop()
    assert [(m.provider_id, m.device) for m in messages] == [(ours.sid, "+15550001111")]


async def test_polling_errors_are_retryable(fake: FakeTwilio, gw: Twilio) -> None:
    fake.fail_next("list", status=502)
    with pytest.raises(Retryable):
        await gw.poll_inbound(hour_ago())
    fake.fail_next("list", status=200, raw=b'{"messages": [{"sid"')
    with pytest.raises(Retryable) as caught:
        await gw.poll_inbound(hour_ago())
    assert "malformed" in caught.value.reason
    fake.fail_next("list", status=200, body={"unexpected": True})
    with pytest.raises(Retryable):
        await gw.poll_inbound(hour_ago())


async def test_poll_status_reports_changes_and_reasons(fake: FakeTwilio, gw: Twilio) -> None:
    a = str((await gw.send(sms("a"))).provider_id)
    b = str((await gw.send(sms("b"))).provider_id)
    c = str((await gw.send(sms("c"))).provider_id)
    fake.set_status(a, "delivered")
    fake.set_status(b, "undelivered", error_code=30005)
    updates = await gw.poll_status([row(a), row(b), row(c), row("SM" + "0" * 32)])
    assert [(u.provider_id, u.status) for u in updates] == [
        (a, Status.DELIVERED),
        (b, Status.FAILED),
    ]  # c did not change and the unknown sid (404) is skipped
    assert updates[1].reason == "Unknown destination handset (Twilio error 30005)"
    fake.fail_next("fetch", status=429)
    with pytest.raises(RateLimited):
        await gw.poll_status([row(c)])


async def test_history_merges_both_directions_oldest_first(fake: FakeTwilio, gw: Twilio) -> None:
    now = time.time()
    fake.receive_sms(CUSTOMER, "hi", at=now - 30)
    reply = await gw.send(sms("hello back"))
    fake.set_status(str(reply.provider_id), "sent")
    fake.receive_sms(CUSTOMER, "thanks", at=now + 1)
    fake.receive_sms("+14155550000", "someone else", at=now - 10)
    items = await gw.history(CUSTOMER, 10)
    assert [(i.outgoing, i.text) for i in items] == [
        (False, "hi"),
        (True, "hello back"),
        (False, "thanks"),
    ]
    assert [(i.text) for i in await gw.history(CUSTOMER, 2)] == ["hello back", "thanks"]


# -- config ------------------------------------------------------------------------------------


def _problems(section: dict[str, Any]) -> list[str]:
    data = {
        "gateways": [{"name": "tw", "type": "twilio", **section}],
        "chats": [{"name": "support", "type": "telegram", "bot_token": "1:x", "chat_id": -5}],
        "routes": [{"gateway": "tw", "chat": "support"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ={})
    return caught.value.problems


GOOD = {"account_sid": "AC" + "a" * 32, "auth_token": "t", "from_number": NUMBER}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"account_sid": None}, "gateways[0].account_sid: field required"),
        ({"auth_token": None}, "gateways[0].auth_token: field required"),
        ({"account_sid": "AC123"}, "gateways[0].account_sid: must be the Account SID"),
        ({"from_number": None}, "gateways[0]: needs from_number or messaging_service_sid"),
        ({"from_number": "not a number!"}, "gateways[0].from_number: 'not a number!' is not"),
        ({"messaging_service_sid": "MG1"}, "gateways[0].messaging_service_sid: must be a"),
        ({"webhook_token": "short"}, "gateways[0].webhook_token: must be at least 16"),
        ({"sid": "x"}, "gateways[0].sid: unknown key"),
    ],
)
async def test_config_errors_name_the_key_and_the_problem(
    change: dict[str, Any], expected: str
) -> None:
    section = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    found = _problems(section)
    assert any(p.startswith(expected) for p in found), found


async def test_config_accepts_a_service_alone_and_normalises_the_number() -> None:
    alone = TwilioConfig.model_validate(
        {
            "name": "tw",
            "type": "twilio",
            **GOOD,
            "from_number": None,
            "messaging_service_sid": SERVICE_SID,
        }
    )
    assert alone.from_number is None
    spaced = TwilioConfig.model_validate(
        {"name": "tw", "type": "twilio", **GOOD, "from_number": "+1 501 712 2661"}
    )
    assert spaced.from_number == NUMBER


# -- device status (the watchdog) ---------------------------------------------------------------


async def test_device_status_is_whether_the_account_answers_and_is_active(
    gw: Twilio, fake: FakeTwilio
) -> None:
    [account] = await gw.device_status()
    assert (account.device, account.online) == ("account", True)
    assert fake.requests[-1].path == f"/2010-04-01/Accounts/{fake.account_sid}.json"
    fake.account_status = "suspended"
    [account] = await gw.device_status()
    assert account.online is False
    fake.fail_next("account", status=500)
    with pytest.raises(Retryable):
        await gw.device_status()


async def test_device_status_with_a_wrong_token_is_refused(fake: FakeTwilio) -> None:
    gateway = await started(Twilio(config(fake, auth_token="wrong-token-0123456789abcdef")))
    try:
        with pytest.raises(Terminal, match="HTTP 401"):
            await gateway.device_status()
    finally:
        await gateway.stop()
