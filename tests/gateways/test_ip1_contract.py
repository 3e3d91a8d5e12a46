"""The iP1 connector against the fake iP1 API and its real callbacks, over loopback HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from harness import per_module
from starlette.responses import Response

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
from bridge.models import InboundSms, OutboundSms, Outbox, SendResult, Status, WebhookRequest
from bridge.testing.fake_harness import Started, WebhookReceiver
from connectors.sms.ip1.client import Ip1, Ip1Config
from connectors.sms.ip1.fake import NUMBER, FakeIp1

KEY = "ip1-test-api-key"
TOKEN = "ip1-hook-token-0123456789"
PUBLIC = "https://bridge.example/webhooks/sms/ip1"
CUSTOMER = "+46712345678"
PAYLOADS = Path(__file__).parent / "payloads" / "ip1"

pytestmark = pytest.mark.asyncio(loop_scope="module")


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


_served, fake = per_module("fake", lambda: FakeIp1(KEY), FakeIp1.reset)
_receiver, hooks = per_module(
    "hooks",
    # Where the fake's callbacks land, kept as the bridge's web layer would hand them over.
    lambda: WebhookReceiver(
        "ip1", lambda _: Response(b'{"status":"ok"}', 200, media_type="application/json")
    ).serving(),
    lambda receiver: receiver.got.clear(),
)


def config(fake: FakeIp1, **overrides: Any) -> Ip1Config:
    section = fake.section("ip1", sender="+46 10 160 60 60", webhook_token=TOKEN, timeout=2)
    return Ip1Config.model_validate(section | overrides)


@pytest_asyncio.fixture(loop_scope="module")
async def make(fake: FakeIp1) -> AsyncIterator[Callable[..., Any]]:
    async with Started() as started:

        async def build(public_url: str | None = PUBLIC, **overrides: Any) -> Ip1:
            return await started(Ip1(config(fake, **overrides), public_url))

        yield build


@pytest_asyncio.fixture(loop_scope="module")
async def ip1(make: Callable[..., Any]) -> Ip1:
    gateway: Ip1 = await make()
    return gateway


def sms(outbox_id: int = 7, text: str = "Hello", to: str = CUSTOMER, **kw: Any) -> OutboundSms:
    return OutboundSms(id=outbox_id, to=to, text=text, **kw)


def outbox(result: SendResult, to: str = CUSTOMER) -> Outbox:
    return Outbox(1, 1, "ip1", to, "x", Status.QUEUED, provider_id=result.provider_id)


# sending -----------------------------------------------------------------------------------


async def test_send_posts_a_batch_with_our_reference(fake: FakeIp1, ip1: Ip1) -> None:
    result = await ip1.send(sms(7, "Hello"))
    [batch] = fake.batches
    assert batch.request == {
        "sender": "46101606060",
        "recipients": ["46712345678"],
        "body": "Hello",
        "type": "sms",
        "datacoding": "gsm",
        "reference": "smsbridge-7",
        "deliveryReportUrl": f"{PUBLIC}/{TOKEN}",
    }
    assert result == SendResult(batch.id, Status.QUEUED, "101 Accepted")
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/v2/batches")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"


async def test_send_picks_ucs_and_replies_from_the_number_written_to(
    fake: FakeIp1, ip1: Ip1
) -> None:
    await ip1.send(sms(8, "Ça marche 👍", device="456189040623"))
    request = fake.batches[0].request
    assert (request["datacoding"], request["sender"]) == ("ucs", "456189040623")


async def test_send_answer_as_a_list_of_messages(fake: FakeIp1, ip1: Ip1) -> None:
    fake.send_answer = "messages"
    result = await ip1.send(sms())
    assert result == SendResult(fake.batches[0].id, Status.QUEUED, "101 Accepted")


async def test_send_without_public_url_warns_and_asks_for_no_reports(
    fake: FakeIp1, make: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        gateway = await make(public_url=None)
    assert "server.public_url is not set" in caplog.text
    assert TOKEN not in caplog.text
    await gateway.send(sms())
    assert "deliveryReportUrl" not in fake.batches[0].request


async def test_message_rejected_inside_a_2xx_is_terminal(fake: FakeIp1, ip1: Ip1) -> None:
    fake.rejected["46700000000"] = 405
    with pytest.raises(Terminal) as caught:
        await ip1.send(sms(to="+46700000000"))
    assert (
        caught.value.reason
        == "iP1 refused the SMS: iP1 rejected the recipient number (iP1 status 405)"
    )
    assert caught.value.raw_status == "405 RecipientRejected"


async def test_validation_error_is_terminal_in_the_vendors_words(
    fake: FakeIp1, make: Callable[..., Any]
) -> None:
    gateway = await make(datacoding="gsm")
    with pytest.raises(Terminal) as caught:
        await gateway.send(sms(text="emoji 😀 need UCS"))
    assert caught.value.reason == (
        "iP1 rejected the request (HTTP 400): One or more validation errors occurred. "
        "(Body: The Body contains characters that need datacoding 'ucs'.)"
    )
    assert caught.value.raw_status == "400"
    assert fake.batches == []


async def test_what_ip1_cannot_take_is_refused_before_calling(fake: FakeIp1, ip1: Ip1) -> None:
    for bad, why in [
        (sms(text="  "), "cannot send an empty SMS"),
        (sms(text="x" * 2001), "at most 2000 characters"),
        (sms(to="BANK"), "only send to phone numbers"),
    ]:
        with pytest.raises(Terminal, match=why):
            await ip1.send(bad)
    assert fake.requests == []


async def test_a_refused_key_is_terminal_and_never_shown(
    fake: FakeIp1, make: Callable[..., Any]
) -> None:
    gateway = await make(api_key="ip1-wrong-key")
    with pytest.raises(Terminal) as caught:
        await gateway.send(sms())
    assert caught.value.reason == "iP1 refused our credentials (HTTP 401): Unauthorized"
    assert "wrong-key" not in str(caught.value)
    assert fake.batches == []


async def test_rate_limits_and_server_errors_are_retried_then_recover(
    fake: FakeIp1, ip1: Ip1
) -> None:
    fake.fail_next("send", status=429, retry_after=7)
    with pytest.raises(RateLimited) as limited:
        await ip1.send(sms())
    assert limited.value.retry_after == 7.0
    fake.fail_next("send", status=500)
    with pytest.raises(Ambiguous, match=r"iP1 error \(HTTP 500\): Internal Server Error"):
        await ip1.send(sms())  # a 500 may come after the batch was stored
    fake.fail_next("send", status=503)
    with pytest.raises(Retryable) as unavailable:
        await ip1.send(sms())
    assert not isinstance(unavailable.value, Ambiguous)
    assert fake.batches == []
    result = await ip1.send(sms())
    assert result.provider_id == fake.batches[0].id


async def test_an_accepted_send_that_times_out_is_found_again(
    fake: FakeIp1, make: Callable[..., Any]
) -> None:
    gateway = await make(timeout=0.2)
    since = datetime.now(UTC)
    fake.fail_next("send", status=200, delay=0.6)  # stored at once, answered too late
    with pytest.raises(Ambiguous, match="timed out"):
        await gateway.send(sms(41, "Your table is ready"))
    [batch] = fake.batches
    table = "Your table is ready"
    assert await gateway.find_sent(sms(41, table), since) == batch.id
    assert await gateway.find_sent(sms(41, table), since, frozenset({batch.id})) is None
    assert await gateway.find_sent(sms(42, table), since) is None  # another SMS of ours
    assert await gateway.find_sent(sms(41, to="+46700000001"), since) is None  # 404: nothing


async def test_malformed_and_truncated_answers_are_clear_errors(fake: FakeIp1, ip1: Ip1) -> None:
    fake.fail_next("send", status=201, raw=b'{"id":"5bc86b6e85c7')
    with pytest.raises(Ambiguous, match=r"malformed response \(HTTP 201\)"):
        await ip1.send(sms())
    fake.fail_next("send", status=201, raw=b"{}")
    with pytest.raises(Ambiguous, match="without a batch id"):
        await ip1.send(sms())
    fake.fail_next("conversation", status=200, raw=b'[{"id":"a1","body":"hel')
    with pytest.raises(Retryable, match="malformed") as caught:
        await ip1.history(CUSTOMER, 10)
    assert not isinstance(caught.value, Ambiguous)
    fake.fail_next("messages", status=502, raw=b"<html>Bad gateway</html>")
    with pytest.raises(Retryable, match=r"HTTP 502"):
        await ip1.poll_status([outbox(SendResult("5bc86b6e85c7209830f96936"))])


# callbacks ---------------------------------------------------------------------------------


async def test_incoming_sms_callback(fake: FakeIp1, ip1: Ip1, hooks: WebhookReceiver) -> None:
    url, got = hooks.url, hooks.got
    message = fake.receive_sms("46712345678", "Can I come at 10?")
    callback = await fake.deliver_incoming(f"{url}/{TOKEN}", message)
    assert callback.status == 200
    events = ip1.parse_webhook(got[0])
    assert events.inbound == (
        InboundSms(
            gateway="ip1",
            provider_id=message.id,
            sender="+46712345678",
            text="Can I come at 10?",
            received_at=datetime.fromtimestamp(int(message.statuses[0][1]), UTC),
            device=NUMBER,
        ),
    )
    assert events.updates == ()
    # Redelivered (iP1 retries): the same provider id, which the core de-duplicates.
    await fake.deliver_incoming(f"{url}/{TOKEN}", message)
    assert ip1.parse_webhook(got[1]).inbound == events.inbound


CODES = [
    (101, Status.QUEUED, None),
    (110, Status.QUEUED, None),
    (112, Status.SENT, None),
    (114, Status.SENT, None),
    (201, Status.DELIVERED, None),
    (202, Status.FAILED, "expired before it reached the phone (iP1 status 202)"),
    (203, Status.FAILED, "canceled (iP1 status 203)"),
    (104, Status.FAILED, "refunded by iP1: the message was not delivered (iP1 status 104)"),
    (402, Status.FAILED, "insufficient funds on the iP1 account (iP1 status 402)"),
    (408, Status.FAILED, "rejected by iP1 (status 408)"),
    (511, Status.FAILED, "undeliverable (iP1 status 511)"),
    (299, Status.SENT, None),  # an unknown final code: taken, never guessed delivered
]


@pytest.mark.parametrize("id_field", ["messageId", "id"])
async def test_delivery_reports_map_every_code_group(
    fake: FakeIp1, ip1: Ip1, hooks: WebhookReceiver, id_field: Any
) -> None:
    url, got = hooks.url, hooks.got
    fake.report_id_field = id_field
    result = await ip1.send(sms())
    assert fake.batches[0].report_url == f"{PUBLIC}/{TOKEN}"
    fake.batches[0].request["deliveryReportUrl"] = f"{url}/{TOKEN}"  # our receiver stands in
    [message] = fake.sent
    for code, _status, _reason in CODES:
        callback = await fake.report(message, code)
        assert callback is not None and callback.status == 200
    assert fake.callbacks[0].payload[id_field] == message.id
    seen = [ip1.parse_webhook(request) for request in got]
    assert [(e.updates[0].status, e.updates[0].reason) for e in seen] == [
        (status, reason) for _code, status, reason in CODES
    ]
    assert {e.updates[0].provider_id for e in seen} == {result.provider_id}
    assert seen[1].updates[0].raw_status == "110 Sending"
    assert seen[-1].updates[0].raw_status == "299"
    # Each event is its own key; a redelivered one carries the same key, so it counts once.
    assert len({e.event_id for e in seen}) == len(CODES)
    await fake.report(message, 201)
    assert ip1.parse_webhook(got[-1]).event_id == seen[4].event_id


async def test_reports_out_of_order_keep_their_own_codes(
    fake: FakeIp1, ip1: Ip1, hooks: WebhookReceiver
) -> None:
    url, got = hooks.url, hooks.got
    await ip1.send(sms())
    fake.batches[0].request["deliveryReportUrl"] = f"{url}/{TOKEN}"
    [message] = fake.sent
    await fake.report(message, 201)
    await fake.report(message, 112)  # the carrier's late "sent" after the handset receipt
    first, late = (ip1.parse_webhook(r).updates[0] for r in got)
    assert (first.status, first.raw_status) == (Status.DELIVERED, "201 DeliveredToHandset")
    assert (late.status, late.raw_status) == (Status.SENT, "112 DeliveredToCarrier")
    assert late.status.rank < first.status.rank  # the core keeps the delivered one


def _request(body: bytes, token: str | None = TOKEN, method: str = "POST") -> WebhookRequest:
    return WebhookRequest("ip1", token, {}, body, time.time(), method=method)


async def test_documented_payloads_parse(ip1: Ip1) -> None:
    [sms_in] = ip1.parse_webhook(_request((PAYLOADS / "incoming_sms.json").read_bytes())).inbound
    assert (sms_in.provider_id, sms_in.sender, sms_in.text, sms_in.device) == (
        "5c613848879973045cf39ac4",
        "+46712345678",
        "Hi my name is earl",
        "456189040623",
    )
    assert sms_in.received_at == datetime(2018, 10, 23, 17, 43, 21, tzinfo=UTC)
    queued = ip1.parse_webhook(_request((PAYLOADS / "delivery_report.json").read_bytes()))
    rejected = ip1.parse_webhook(_request((PAYLOADS / "delivery_report_id.json").read_bytes()))
    assert [(u.provider_id, u.status, u.raw_status) for u in queued.updates + rejected.updates] == [
        ("5c613848879973045cf39ac3", Status.QUEUED, "102 Queued"),
        ("5c613848879973045cf39ac3", Status.FAILED, "405 RecipientRejected"),
    ]
    both = json.dumps([payload("delivery_report.json"), payload("incoming_sms.json")]).encode()
    events = ip1.parse_webhook(_request(both))
    assert (len(events.inbound), len(events.updates), events.event_id) == (1, 1, None)


async def test_webhooks_refuse_bad_tokens_and_bad_bodies(ip1: Ip1) -> None:
    good = (PAYLOADS / "incoming_sms.json").read_bytes()
    with pytest.raises(Forbidden) as wrong:
        ip1.parse_webhook(_request(good, token="ip1-hook-token-0123456788"))
    assert wrong.value.status == 403 and TOKEN not in wrong.value.reason
    with pytest.raises(Unauthenticated) as missing:
        ip1.parse_webhook(_request(good, token=None))
    assert missing.value.status == 401
    with pytest.raises(BadRequest, match="POST"):
        ip1.parse_webhook(_request(b"", method="GET"))
    with pytest.raises(BadRequest, match="malformed JSON"):
        ip1.parse_webhook(_request(good[:40]))
    with pytest.raises(BadRequest, match="expected an object"):
        ip1.parse_webhook(_request(b"[1, 2]"))
    no_sender = {k: v for k, v in payload("incoming_sms.json").items() if k != "sender"}
    with pytest.raises(Unprocessable, match="missing field 'sender'") as caught:
        ip1.parse_webhook(_request(json.dumps(no_sender).encode()))
    assert caught.value.status == 422
    no_batch = {k: v for k, v in payload("delivery_report.json").items() if k != "batchId"}
    with pytest.raises(Unprocessable, match="missing field 'batchId'"):
        ip1.parse_webhook(_request(json.dumps(no_batch).encode()))
    bad_code = payload("delivery_report.json") | {"code": "soon"}
    with pytest.raises(Unprocessable, match="status code"):
        ip1.parse_webhook(_request(json.dumps(bad_code).encode()))
    with pytest.raises(Unprocessable, match="neither"):
        ip1.parse_webhook(_request(b'{"hello": "world"}'))
    echo = payload("incoming_sms.json") | {"direction": "mt"}
    assert ip1.parse_webhook(_request(json.dumps(echo).encode())).ignored == (
        "an outgoing message, not an incoming one"
    )


async def test_the_fake_speaks_the_documented_shapes(
    fake: FakeIp1, ip1: Ip1, hooks: WebhookReceiver
) -> None:
    """The fake is only worth what it resembles: its bodies have the documented fields."""
    url, got = hooks.url, hooks.got
    await fake.deliver_incoming(f"{url}/{TOKEN}", fake.receive_sms("46712345678", "hi"))
    assert set(json.loads(got[0].body)) == set(payload("incoming_sms.json"))
    await ip1.send(sms())
    fake.batches[0].request["deliveryReportUrl"] = f"{url}/{TOKEN}"
    await fake.report(fake.sent[0], 112)
    assert set(json.loads(got[1].body)) == set(payload("delivery_report.json"))
    assert set(fake.batches[0].resource()) >= set(payload("batch.json"))
    line = fake.sent[0].resource(numeric=True)
    assert set(line) == set(payload("conversation.json")[0])
    assert (line["direction"], line["type"], line["datacoding"]) == (0, 0, 0)
    async with httpx.AsyncClient(base_url=fake.base_url, trust_env=False) as client:
        refused = await client.post("/v2/batches", json={}, headers={"Authorization": "Bearer x"})
        assert (refused.status_code, refused.content) == (401, b"")
        assert refused.headers["www-authenticate"] == "Bearer"
        invalid = await client.post(
            "/v2/batches",
            json={"sender": "Salon", "recipients": ["+4670"], "body": "hi"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
    problem = invalid.json()
    assert invalid.status_code == 400
    assert set(problem) <= set(payload("problem_400.json"))
    assert problem["errors"] == {
        "Recipients": ["Recipients must be MSISDNs: up to 15 digits, without '+'."]
    }


# status polling, backfill ------------------------------------------------------------------


async def test_status_poll_reads_the_latest_status(fake: FakeIp1, ip1: Ip1) -> None:
    first = await ip1.send(sms(1))
    second = await ip1.send(sms(2, to="+46700000002"))
    one, two = fake.sent
    fake.set_status(one, 112)
    fake.set_status(one, 110, at=one.statuses[0][1] - 5)  # listed last, but older
    fake.set_status(two, 405)
    gone = SendResult("5bc86b6e85c7209830f96936")  # a batch iP1 no longer knows
    updates = await ip1.poll_status(
        [outbox(first), outbox(gone), outbox(second, to="+46700000002")]
    )
    assert [(u.provider_id, u.status, u.raw_status, u.reason) for u in updates] == [
        (first.provider_id, Status.SENT, "112 DeliveredToCarrier", None),
        (
            second.provider_id,
            Status.FAILED,
            "405 RecipientRejected",
            "iP1 rejected the recipient number (iP1 status 405)",
        ),
    ]
    assert {r.path for r in fake.requests if r.method == "GET"} == {
        f"/v2/batches/{first.provider_id}/messages",
        f"/v2/batches/{gone.provider_id}/messages",
        f"/v2/batches/{second.provider_id}/messages",
    }


async def test_history_merges_both_directions_oldest_first(fake: FakeIp1, ip1: Ip1) -> None:
    fake.receive_sms("46712345678", "Can I come at 10?").statuses[0] = (201, 1_700_000_000)
    await ip1.send(sms(1, "Yes, 10:00 works."))
    fake.sent[0].statuses[0] = (101, 1_700_000_100)
    fake.receive_sms("46799999999", "someone else")
    fake.receive_sms("46712345678", "Thanks!").statuses[0] = (201, 1_700_000_200)
    items = await ip1.history(CUSTOMER, 50)
    assert [(i.outgoing, i.text) for i in items] == [
        (False, "Can I come at 10?"),
        (True, "Yes, 10:00 works."),
        (False, "Thanks!"),
    ]
    assert items[0].at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert [i.text for i in await ip1.history(CUSTOMER, 2)] == ["Yes, 10:00 works.", "Thanks!"]
    assert fake.requests[-1].path == "/v2/conversations/46712345678"
    assert await ip1.history("+46700000009", 50) == []  # iP1: 404 "No messages to list"


async def test_history_reads_both_direction_encodings(fake: FakeIp1, ip1: Ip1) -> None:
    fake.fail_next("conversation", status=200, body=payload("conversation.json"))
    numeric = await ip1.history(CUSTOMER, 50)
    assert [(i.outgoing, i.text, i.provider_id) for i in numeric] == [
        (False, "Can I come at 10?", "5c6138488799730450000004"),
        (True, "Yes, 10:00 works.", "5c6138488799730450000002"),
    ]
    words = payload("conversation_mo_mt.json")
    fake.fail_next("conversation", status=200, body=words)
    assert [i.outgoing for i in await ip1.history(CUSTOMER, 50)] == [True, False]
    # Without the numbers to go by, the direction field alone decides.
    bare = [{k: v for k, v in row.items() if k not in ("sender", "recipient")} for row in words]
    fake.fail_next("conversation", status=200, body=bare)
    assert [i.outgoing for i in await ip1.history(CUSTOMER, 50)] == [True, False]


def _dated(rows: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """The rows as if each message had been created at ``at`` (whole seconds, as iP1 writes)."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for row in rows:
        row["statuses"] = [status | {"created": stamp} for status in row["statuses"]]
        row["modified"] = stamp
    return rows


REPLY = "Yes, 10:00 works."  # the text of our message in conversation.json


async def test_reconcile_reads_the_reference_from_the_conversation(fake: FakeIp1, ip1: Ip1) -> None:
    since = datetime.now(UTC).replace(microsecond=500_000) - timedelta(minutes=5)
    rows = _dated(payload("conversation.json"), since + timedelta(minutes=1))
    fake.fail_next("conversation", status=200, body=rows)
    assert await ip1.find_sent(sms(7, REPLY), since) == "5c6138488799730450000001"
    # iP1's times have whole seconds: a batch stored in the same second as ``since`` reads
    # half a second earlier here, and is still ours.
    fake.fail_next("conversation", status=200, body=_dated(rows, since))
    assert await ip1.find_sent(sms(7, REPLY), since) == "5c6138488799730450000001"


@pytest.mark.parametrize(
    ("age", "text", "recipient"),
    [
        (timedelta(days=2000), REPLY, "46712345678"),  # the 2018 batch of an earlier store
        (timedelta(minutes=10), REPLY, "46712345678"),  # sent before this attempt began
        (timedelta(seconds=-60), "Another text", "46712345678"),
        (timedelta(seconds=-60), REPLY, "46700000001"),
    ],
)
async def test_reconcile_ignores_a_reused_reference(
    fake: FakeIp1, ip1: Ip1, age: timedelta, text: str, recipient: str
) -> None:
    """A reset store numbers its outbox from 1 again: an old batch with our reference, or one
    with other content, is not this SMS, which must still go out."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    rows = _dated(payload("conversation.json"), since - age)
    rows[0] |= {"body": text, "recipient": recipient}
    fake.fail_next("conversation", status=200, body=rows)
    assert await ip1.find_sent(sms(7, REPLY), since) is None


async def test_reconcile_skips_a_message_without_a_time(fake: FakeIp1, ip1: Ip1) -> None:
    undated = payload("conversation.json")
    for row in undated:
        row["statuses"], row["modified"] = [], None
    fake.fail_next("conversation", status=200, body=undated)
    assert await ip1.find_sent(sms(7, REPLY), datetime.now(UTC) - timedelta(days=1)) is None


# configuration -----------------------------------------------------------------------------


def _parse(**overrides: Any) -> Any:
    section: dict[str, Any] = {
        "name": "ip1",
        "type": "ip1",
        "api_key": "${IP1_API_KEY}",
        "sender": "46101606060",
        "webhook_token": TOKEN,
    }
    section.update(overrides)
    section = {k: v for k, v in section.items() if v is not None}
    chat = {"name": "support", "type": "telegram", "bot_token": "123:abc", "chat_id": -100}
    data = {
        "gateways": [section],
        "chats": [chat],
        "routes": [{"gateway": "ip1", "chat": "support"}],
    }
    return parse_config(data, environ={"IP1_API_KEY": KEY})


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"api_key": None}, "gateways[0].api_key: field required"),
        ({"webhook_token": None}, "gateways[0].webhook_token: field required"),
        ({"webhook_token": "short"}, "gateways[0].webhook_token: must be at least 16 characters"),
        ({"sender": "1234567890123456"}, "gateways[0].sender: a sender number has at most 15"),
        ({"sender": "My Salon Ltd"}, "gateways[0].sender: must be a phone number or a name"),
        ({"receive": "poll"}, "gateways[0]: receive: poll is not possible with iP1"),
        ({"datacoding": "utf8"}, "gateways[0].datacoding: input should be 'auto', 'gsm' or"),
        ({"api_token": "x"}, "gateways[0].api_token: unknown key"),
    ],
)
async def test_config_errors_name_the_key(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(**overrides)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert KEY not in str(caught.value)


async def test_config_defaults() -> None:
    ip1 = _parse().gateways[0]
    assert isinstance(ip1, Ip1Config)
    assert (ip1.receive, ip1.datacoding, str(ip1.base_url)) == (
        "webhook",
        "auto",
        "https://api.ip1sms.com/",
    )
    assert ip1.api_key.get_secret_value() == KEY
    assert ip1.status_poll_interval == 300  # reports come by callback; polling is the net
    assert _parse(sender=" Salon ").gateways[0].sender == "Salon"
