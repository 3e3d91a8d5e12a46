"""The SMSMobileAPI connector against its fake, over loopback HTTP: send, poll, status, history,
and both webhooks (the unsigned one with a URL token, the signed Webhook V2)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from harness import per_module

from bridge.errors import (
    Ambiguous,
    Forbidden,
    NotFound,
    RateLimited,
    Retryable,
    Terminal,
    Unauthenticated,
)
from bridge.models import OutboundSms, Outbox, Status
from bridge.testing.fake_harness import Started, WebhookReceiver
from connectors.sms.smsmobileapi.client import SmsMobileApi, SmsMobileApiConfig
from connectors.sms.smsmobileapi.fake import DEFAULT_DEVICE, FakeSmsMobileApi

TOKEN = "smsmobileapi-hook-0123456789"
CUSTOMER = "+15551234567"

# One fake and one webhook receiver for the module: a uvicorn start/stop costs ~0.1 s each.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _reset(fake: FakeSmsMobileApi) -> None:
    fake.reset()
    fake.ms_timestamps = False


_served, fake = per_module("fake", FakeSmsMobileApi, _reset)
_hook_server, receiver = per_module(
    "receiver", lambda: WebhookReceiver("office").serving(), lambda r: r.got.clear()
)


def make_config(fake: FakeSmsMobileApi, **overrides: Any) -> SmsMobileApiConfig:
    data = fake.section("office", receive="both", webhook_token=TOKEN, timeout=2)
    return SmsMobileApiConfig.model_validate(data | overrides)


@pytest_asyncio.fixture(loop_scope="module")
async def make(fake: FakeSmsMobileApi) -> AsyncIterator[Callable[..., Any]]:
    async with Started() as started:

        async def build(**overrides: Any) -> SmsMobileApi:
            return await started(SmsMobileApi(make_config(fake, **overrides)))

        yield build


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(make: Callable[..., Any]) -> SmsMobileApi:
    built: SmsMobileApi = await make()
    return built


def outbound(id: int = 7, text: str = "On my way", to: str = CUSTOMER, **kw: Any) -> OutboundSms:
    return OutboundSms(id=id, to=to, text=text, **kw)


def outbox(provider_id: str, id: int = 7) -> Outbox:
    return Outbox(id, 1, "office", CUSTOMER, "On my way", Status.QUEUED, provider_id)


# sending ---------------------------------------------------------------------------------


async def test_send_posts_the_documented_form_and_keeps_the_vendors_id(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    result = await gateway.send(outbound(text="Hello €"))
    [sent] = fake.sent
    assert (result.provider_id, result.status) == (sent.guid, Status.QUEUED)
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/sendsms/")
    assert request.params == {"apikey": fake.api_key, "recipients": CUSTOMER, "message": "Hello €"}


async def test_the_phone_and_sim_of_the_sms_win_over_the_configured_ones(
    fake: FakeSmsMobileApi, make: Callable[..., Any]
) -> None:
    gateway: SmsMobileApi = await make(device="office-phone-2", sim=1)
    await gateway.send(outbound(1))
    await gateway.send(outbound(2, device=DEFAULT_DEVICE, sim=2))
    assert [(s.sid, s.port) for s in fake.sent] == [("office-phone-2", 1), (DEFAULT_DEVICE, 2)]


async def test_an_error_inside_http_200_is_terminal_in_the_vendors_words(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    with pytest.raises(Terminal, match="Message is empty"):
        await gateway.send(outbound(text=" "))
    assert fake.sent == []


async def test_a_wrong_key_is_terminal(make: Callable[..., Any]) -> None:
    gateway: SmsMobileApi = await make(api_key="not-the-key")
    with pytest.raises(Terminal, match="API key invalid") as caught:
        await gateway.send(outbound())
    assert caught.value.raw_status == "403"


@pytest.mark.parametrize(
    ("status", "error"), [(500, Ambiguous), (503, Retryable), (429, RateLimited)]
)
async def test_a_failed_send_says_whether_the_sms_may_have_left(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi, status: int, error: type[Exception]
) -> None:
    fake.fail_next("/sendsms/", status=status, retry_after=7 if status == 429 else None)
    with pytest.raises(error):
        await gateway.send(outbound())


async def test_a_send_answered_too_late_is_ambiguous_and_find_sent_finds_it(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi, make: Callable[..., Any]
) -> None:
    impatient: SmsMobileApi = await make(timeout=0.5)
    since = datetime.now(UTC) - timedelta(seconds=5)
    fake.fail_next("/sendsms/", status=200, delay=2.0)  # the phone sends, the answer is late
    with pytest.raises(Ambiguous):
        await impatient.send(outbound(text="Your parcel is here"))
    [sent] = fake.sent
    assert await gateway.find_sent(outbound(text="Your parcel is here"), since) == sent.guid
    assert await gateway.find_sent(outbound(text="Something else"), since) is None
    excluded = frozenset({sent.guid})
    assert await gateway.find_sent(outbound(text="Your parcel is here"), since, excluded) is None


# polling ---------------------------------------------------------------------------------


def an_hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def test_a_poll_returns_new_sms_with_the_vendors_fields(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    row = fake.receive_sms("+1 (555) 123-4567", "Is it ready?", alias="Taylor")
    [sms] = await gateway.poll_inbound(an_hour_ago())
    assert (sms.gateway, sms.provider_id, sms.sender, sms.text) == (
        "office",
        row.guid,
        CUSTOMER,
        "Is it ready?",
    )
    assert (sms.alias, sms.device) == ("Taylor", DEFAULT_DEVICE)
    assert sms.received_at == datetime.fromtimestamp(row.timestamp_unix, UTC)
    [request] = fake.requests
    assert (request.path, request.params["apikey"]) == ("/getsms/", fake.api_key)


async def test_a_poll_asks_from_a_second_before_since_and_lists_late_rows(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    first = fake.receive_sms(CUSTOMER, "one")
    since = datetime.fromtimestamp(first.timestamp_unix, UTC)
    assert [s.provider_id for s in await gateway.poll_inbound(since)] == [first.guid]
    assert fake.requests[-1].params["after_timestamp_unix"] == str(first.timestamp_unix - 1)
    # A second phone syncing late: its row is dated before the one already listed.
    late = fake.receive_sms(CUSTOMER, "late", timestamp_unix=first.timestamp_unix - 600)
    again = await gateway.poll_inbound(since - timedelta(hours=1))
    assert {s.provider_id for s in again} == {first.guid, late.guid}


async def test_an_account_answering_in_milliseconds_is_read_in_seconds(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    fake.ms_timestamps = True
    row = fake.receive_sms(CUSTOMER, "ms account")
    await gateway.poll_inbound(an_hour_ago())  # learns the unit from the answer
    [sms] = await gateway.poll_inbound(an_hour_ago())
    assert fake.requests[-1].params["after_timestamp_unix"].endswith("000")
    assert sms.received_at == datetime.fromtimestamp(row.timestamp_unix, UTC)


async def test_a_failing_poll_is_retryable(fake: FakeSmsMobileApi, gateway: SmsMobileApi) -> None:
    fake.fail_next("/getsms/", status=500)
    with pytest.raises(Retryable):
        await gateway.poll_inbound(an_hour_ago())


# delivery status -------------------------------------------------------------------------


async def test_status_polling_reads_the_sent_log(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    ok = (await gateway.send(outbound(1))).provider_id
    bad = (await gateway.send(outbound(2))).provider_id
    waiting = (await gateway.send(outbound(3))).provider_id
    assert ok and bad and waiting
    fake.set_status(ok, "Success")
    fake.set_status(bad, "Error", error="No signal")
    updates = await gateway.poll_status([outbox(ok, 1), outbox(bad, 2), outbox(waiting, 3)])
    found = {u.provider_id: (u.status, u.reason) for u in updates}
    assert found == {
        ok: (Status.SENT, None),
        bad: (Status.FAILED, "No signal"),
        waiting: (Status.QUEUED, None),
    }


# history ---------------------------------------------------------------------------------


async def test_history_merges_both_directions_oldest_first(
    fake: FakeSmsMobileApi, gateway: SmsMobileApi
) -> None:
    now = int(time.time())
    fake.receive_sms(CUSTOMER, "first", timestamp_unix=now - 60)
    await gateway.send(outbound(text="second"))
    fake.receive_sms("+15550009999", "someone else", timestamp_unix=now - 30)
    items = await gateway.history(CUSTOMER, limit=10)
    assert [(i.outgoing, i.text) for i in items] == [(False, "first"), (True, "second")]
    assert [i.text for i in await gateway.history(CUSTOMER, limit=1)] == ["second"]


# webhooks --------------------------------------------------------------------------------


async def test_a_signed_v2_sms_is_parsed_with_its_event_id(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, gateway: SmsMobileApi
) -> None:
    row = fake.receive_sms(CUSTOMER, "Signed hello", alias="Taylor")
    answer = await fake.deliver_received_v2(receiver.url, row, event_id="evt-1")
    assert answer.status_code == 202
    [request] = receiver.got
    events = gateway.parse_webhook(request)
    [sms] = events.inbound
    assert (events.event_id, sms.provider_id, sms.sender, sms.text, sms.alias) == (
        "evt-1",
        row.guid,
        CUSTOMER,
        "Signed hello",
        "Taylor",
    )


@pytest.mark.parametrize(
    ("kind", "status"), [("sms.sent", Status.SENT), ("sms.failed", Status.FAILED)]
)
async def test_a_signed_v2_status_event_updates_the_sms_it_names(
    fake: FakeSmsMobileApi,
    receiver: WebhookReceiver,
    gateway: SmsMobileApi,
    kind: str,
    status: Status,
) -> None:
    guid = (await gateway.send(outbound())).provider_id
    assert guid
    await fake.deliver_status_v2(receiver.url, guid, kind, reason="No signal")
    [update] = gateway.parse_webhook(receiver.got[0]).updates
    assert (update.provider_id, update.status) == (guid, status)
    assert update.reason == ("No signal" if status is Status.FAILED else None)


async def test_an_unknown_v2_event_is_ignored_not_refused(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, gateway: SmsMobileApi
) -> None:
    await fake.deliver_v2(receiver.url, "account.updated", {"plan": "pro"})
    events = gateway.parse_webhook(receiver.got[0])
    assert (events.inbound, events.updates) == ((), ())
    assert events.ignored and "account.updated" in events.ignored


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"secret": "not-the-secret"}, "bad signature"),
        ({"timestamp": int(time.time()) - 3600}, "stale or future"),
    ],
)
async def test_a_v2_webhook_that_fails_its_signature_is_unauthenticated(
    fake: FakeSmsMobileApi,
    receiver: WebhookReceiver,
    gateway: SmsMobileApi,
    change: dict[str, Any],
    words: str,
) -> None:
    await fake.deliver_received_v2(receiver.url, fake.receive_sms(CUSTOMER, "forged?"), **change)
    with pytest.raises(Unauthenticated, match=words):
        gateway.parse_webhook(receiver.got[0])


async def test_a_v2_body_changed_after_signing_is_unauthenticated(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, gateway: SmsMobileApi
) -> None:
    await fake.deliver_received_v2(receiver.url, fake.receive_sms(CUSTOMER, "Pay 10 EUR"))
    [signed] = receiver.got
    forged = replace(signed, body=signed.body.replace(b"10 EUR", b"99 EUR"))
    assert forged.body != signed.body
    assert gateway.parse_webhook(signed).inbound  # the original passes
    with pytest.raises(Unauthenticated, match="bad signature"):
        gateway.parse_webhook(forged)


async def test_a_v2_webhook_without_its_headers_is_unauthenticated(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, gateway: SmsMobileApi
) -> None:
    await fake.post_json(receiver.url, {"id": "evt-2", "type": "sms.received", "data": {}})
    with pytest.raises(Unauthenticated, match="missing X-SMSMobileAPI-Signature"):
        gateway.parse_webhook(receiver.got[0])


async def test_the_plain_webhook_is_let_in_by_its_url_token(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, gateway: SmsMobileApi
) -> None:
    row = fake.receive_sms(CUSTOMER, "Plain hello")
    await fake.deliver_plain_webhook(f"{receiver.url}/{TOKEN}", row)
    await fake.deliver_plain_webhook(f"{receiver.url}/wrong-token-0123456789", row)
    right, wrong = receiver.got
    [sms] = gateway.parse_webhook(right).inbound
    assert (sms.provider_id, sms.sender, sms.text) == (row.guid, CUSTOMER, "Plain hello")
    with pytest.raises(Forbidden):
        gateway.parse_webhook(wrong)


async def test_a_webhook_kind_the_config_does_not_set_up_is_not_found(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver, make: Callable[..., Any]
) -> None:
    signed_only: SmsMobileApi = await make(webhook_token=None)
    plain_only: SmsMobileApi = await make(webhook_secret=None)
    row = fake.receive_sms(CUSTOMER, "hello")
    await fake.deliver_plain_webhook(f"{receiver.url}/{TOKEN}", row)
    await fake.deliver_received_v2(receiver.url, row)
    plain, signed = receiver.got
    with pytest.raises(NotFound, match="webhook_token"):
        signed_only.parse_webhook(plain)
    with pytest.raises(NotFound, match="webhook_secret"):
        plain_only.parse_webhook(signed)


# -- device status (the watchdog) ---------------------------------------------------------------


async def test_device_status_reads_the_mobile_list(
    gateway: SmsMobileApi, fake: FakeSmsMobileApi
) -> None:
    [phone] = await gateway.device_status()
    assert (phone.device, phone.online, phone.battery) == (DEFAULT_DEVICE, True, 87)
    assert phone.last_seen is not None and abs(phone.last_seen.timestamp() - time.time()) < 5
    fake.mobiles[0].online = False
    fake.mobiles[0].battery = 9
    fake.mobiles[0].last_seen = time.time() - 600
    [phone] = await gateway.device_status()
    assert (phone.online, phone.battery) == (False, 9)
    assert phone.last_seen is not None and time.time() - phone.last_seen.timestamp() > 590
    request = fake.requests[-1]
    assert request.path == "/gateway/mobile/list/" and request.params["apikey"] == fake.api_key


async def test_device_status_watches_only_the_configured_device(
    make: Callable[..., Any], fake: FakeSmsMobileApi
) -> None:
    gateway: SmsMobileApi = await make(device="other-phone")
    assert await gateway.device_status() == []
    assert fake.requests[-1].params["sid"] == "other-phone"


async def test_device_status_errors_map_like_other_calls(
    make: Callable[..., Any], gateway: SmsMobileApi, fake: FakeSmsMobileApi
) -> None:
    fake.fail_next("/gateway/mobile/list/", status=500)
    with pytest.raises(Retryable, match="HTTP 500"):
        await gateway.device_status()
    wrong: SmsMobileApi = await make(api_key="wrong-key")
    with pytest.raises(Terminal, match="HTTP 403"):
        await wrong.device_status()
