"""The Smstools connector against the fake vendor API, over loopback HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from harness import per_module
from starlette.responses import JSONResponse, Response

from bridge.config import parse_config
from bridge.errors import (
    Ambiguous,
    ConfigError,
    OptedOut,
    RateLimited,
    Retryable,
    Terminal,
    WebhookRejected,
)
from bridge.models import OutboundSms, Outbox, Status, WebhookRequest
from bridge.testing.fake_harness import Started, WebhookReceiver
from connectors.sms.smstools.client import Smstools
from connectors.sms.smstools.config import SmstoolsConfig
from connectors.sms.smstools.fake import INBOX_NUMBER, FakeSmstools
from connectors.sms.smstools.payloads import map_status

PAYLOADS = Path(__file__).parent / "payloads" / "smstools"
TOKEN = "smstools-hook-0123456789"
CUSTOMER = "+32470000001"
OUR_NUMBER = "+" + INBOX_NUMBER

# One fake and one webhook receiver for the module: a uvicorn start/stop costs ~0.1 s each.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return data


def _reset(fake: FakeSmstools) -> None:
    fake.reset()
    fake.media_needs_auth = False
    fake.zone = ZoneInfo("UTC")


_served, fake = per_module("fake", FakeSmstools, _reset)


def make_config(fake: FakeSmstools, **overrides: Any) -> SmstoolsConfig:
    data = fake.section("tools", sender="Shop", webhook_token=TOKEN, timeout=2)
    return SmstoolsConfig.model_validate(data | overrides)


@pytest_asyncio.fixture(loop_scope="module")
async def make(fake: FakeSmstools) -> AsyncIterator[Callable[..., Any]]:
    async with Started() as started:

        async def build(**overrides: Any) -> Smstools:
            return await started(Smstools(make_config(fake, **overrides)))

        yield build


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(make: Callable[..., Any]) -> Smstools:
    built: Smstools = await make()
    return built


def outbound(id: int = 7, text: str = "On my way", to: str = CUSTOMER, **kw: Any) -> OutboundSms:
    return OutboundSms(id=id, to=to, text=text, **kw)


# sending ---------------------------------------------------------------------------------


async def test_send_posts_the_documented_json_with_our_id_as_reference(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    result = await gateway.send(outbound(42, "Hello €"))
    [sent] = fake.sent
    assert (result.provider_id, result.status) == (sent.messageid, Status.QUEUED)
    [request] = [r for r in fake.requests if r.path == "/v1/message/send"]
    assert request.headers["x-client-id"] == fake.client_id
    assert request.headers["x-client-secret"] == fake.client_secret
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body == {"message": "Hello €", "to": "32470000001", "sender": "Shop", "reference": "42"}
    assert set(body) <= set(payload("send.json")["request"])


async def test_a_reply_leaves_from_the_number_the_customer_wrote_to(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    await gateway.send(outbound(1, device=OUR_NUMBER))
    await gateway.send(outbound(2, device="Shop"))  # not a number: the configured sender
    assert [s.sender for s in fake.sent] == [OUR_NUMBER, "Shop"]


@pytest.mark.parametrize(
    ("setup", "words", "raw"),
    [
        (lambda f: f.optouts.add("32470000001"), "opt-out list", "131"),
        (lambda f: setattr(f, "credits", 0), "Not enough credits", "108"),
    ],
)
async def test_vendor_refusals_are_terminal_in_the_vendors_words(
    fake: FakeSmstools,
    gateway: Smstools,
    setup: Callable[[FakeSmstools], None],
    words: str,
    raw: str,
) -> None:
    setup(fake)
    with pytest.raises(Terminal) as caught:
        await gateway.send(outbound())
    assert words in caught.value.reason
    assert f"error {raw}" in caught.value.reason
    assert caught.value.raw_status == raw
    # The opt-out list alone marks the number opted out in the core.
    assert isinstance(caught.value, OptedOut) == (raw == "131")
    assert fake.sent == []


async def test_too_long_text_is_refused_by_the_vendor(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    with pytest.raises(Terminal, match="error 118"):
        await gateway.send(outbound(text="x" * 460))


async def test_wrong_credentials_are_terminal_and_never_echo_the_secret(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(client_secret="not-the-secret-at-all")
    with pytest.raises(Terminal) as caught:
        await gateway.send(outbound())
    assert "refused our credentials" in caught.value.reason
    assert "Invalid credentials" in caught.value.reason
    assert "not-the-secret" not in str(caught.value)
    assert fake.client_id not in str(caught.value)


async def test_an_error_inside_http_200_is_still_an_error(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    body = {"error": "110", "errorMsg": "Sender number must start with +"}
    fake.fail_next("/v1/message/send", status=200, body=body)
    with pytest.raises(Terminal, match=r"error 110\): Sender number must start with \+"):
        await gateway.send(outbound())


async def test_429_is_rate_limited_with_the_vendors_wait(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    fake.fail_next("/v1/message/send", status=429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await gateway.send(outbound())
    assert caught.value.retry_after == 7
    result = await gateway.send(outbound())  # then it goes through
    assert result.provider_id == fake.sent[0].messageid


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, None, Ambiguous),  # may have been sent: reconcile first
        (502, None, Ambiguous),
        (503, None, Retryable),  # refused before doing anything
        (400, {"error": "105", "errorMsg": "Server issues"}, Retryable),  # the docs: retry 105
    ],
)
async def test_server_errors_on_send_are_retried(
    fake: FakeSmstools, gateway: Smstools, status: int, body: Any, error: type[Exception]
) -> None:
    fake.fail_next("/v1/message/send", status=status, body=body)
    with pytest.raises(Retryable) as caught:
        await gateway.send(outbound())
    assert type(caught.value) is error
    assert fake.sent == []


async def test_a_timeout_after_acceptance_is_ambiguous_and_reconciliation_finds_it(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(timeout=0.3)
    since = datetime.now(UTC) - timedelta(seconds=5)
    fake.fail_next("/v1/message/send", status=200, delay=1.0)  # accepts, answers too late
    with pytest.raises(Ambiguous, match="timed out"):
        await gateway.send(outbound(9, "once only"))
    [sent] = fake.sent
    assert await gateway.find_sent(outbound(9, "once only"), since) == sent.messageid
    # Already claimed by another outbox row, another text, or before the attempt: not ours.
    taken = frozenset({sent.messageid})
    assert await gateway.find_sent(outbound(9, "once only"), since, taken) is None
    assert await gateway.find_sent(outbound(9, "other text"), since) is None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await gateway.find_sent(outbound(9, "once only"), later) is None


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        (b'{"messageid": "h2md1ew', Ambiguous, "malformed response"),  # truncated
        (b"<html>Bad gateway</html>", Ambiguous, "malformed response"),
        (b"{}", Ambiguous, "without a message id"),
        (b'["h2md1ewkyzjkuyn9ak7pryw1evtyw3x"]', Ambiguous, "malformed response"),
    ],
)
async def test_malformed_send_answers_are_ambiguous_not_crashes(
    fake: FakeSmstools, gateway: Smstools, raw: bytes, error: type[Exception], words: str
) -> None:
    fake.fail_next("/v1/message/send", status=200, raw=raw)
    with pytest.raises(Retryable) as caught:
        await gateway.send(outbound())
    assert type(caught.value) is error
    assert words in caught.value.reason


async def test_an_unreachable_gateway_is_retryable(make: Callable[..., Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = await make(base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(Retryable, match="unreachable") as caught:
        await gateway.send(outbound())
    assert not isinstance(caught.value, Ambiguous)  # nothing left our side


async def test_a_multi_recipient_answer_and_the_documented_payload_shapes(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    documented = payload("send.json")
    fake.fail_next("/v1/message/send", status=200, body=documented["response_many"])
    result = await gateway.send(outbound())
    assert result.provider_id == documented["response_many"]["messageids"][0]
    # The fake answers in the documented shapes.
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        bad = await client.post("/v1/message/send", content=b"{", headers=_auth(fake))
        one = await client.post(
            "/v1/message/send",
            json={**documented["request"], "date": "2099-01-01 15:30"},
            headers=_auth(fake),
        )
        many = await client.post(
            "/v1/message/send",
            json={**documented["request"], "date": None, "to": ["32470000001", "32470000002"]},
            headers=_auth(fake),
        )
    assert (bad.status_code, bad.json()) == (400, payload("errors.json")["parsing"])
    assert set(one.json()) == set(documented["response"])
    assert set(many.json()) == set(documented["response_many"])
    assert fake.tested == []  # "test": false really sends
    assert [s.to for s in fake.sent[-2:]] == ["32470000001", "32470000002"]


def _auth(fake: FakeSmstools) -> dict[str, str]:
    return {"X-Client-Id": fake.client_id, "X-Client-Secret": fake.client_secret}


# receiving by polling ------------------------------------------------------------------------


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


async def test_poll_lists_the_inbox_with_dates_read_in_the_configured_zone(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    now = time.time()
    older = fake.receive_sms(CUSTOMER, "older", at=now - 7200)
    recent = fake.receive_sms(CUSTOMER, "recent", at=now - 60)
    messages = await gateway.poll_inbound(hours_ago(3))
    assert {(m.provider_id, m.text) for m in messages} == {
        (older.id, "older"),
        (recent.id, "recent"),
    }
    sms = next(m for m in messages if m.provider_id == recent.id)
    assert (sms.sender, sms.device, sms.gateway) == (CUSTOMER, OUR_NUMBER, "tools")
    assert abs(sms.received_at.timestamp() - int(recent.at)) < 1  # UTC, as the seed shows
    inbox_requests = [r for r in fake.requests if r.path == "/v1/message/inbox"]
    assert all(r.query["type"] == "sms" for r in inbox_requests)


async def test_polling_pages_back_until_a_whole_page_predates_since(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(page_size=2)
    now = time.time()
    for hours in (9, 8, 7):
        fake.receive_sms(CUSTOMER, f"{hours} hours ago", at=now - hours * 3600)
    late = fake.receive_sms(CUSTOMER, "listed after newer ones", at=now - 1800)
    burst = [fake.receive_sms(CUSTOMER, f"burst {i}") for i in range(4)]
    fake.requests.clear()
    messages = await gateway.poll_inbound(hours_ago(1))
    texts = {m.text for m in messages}
    assert {s.message for s in [*burst, late]} <= texts
    # Page 3 holds the late row and the first one older than ``since``: a page that still
    # has newer rows does not end the paging. Page 4 is all older; no page after it is asked.
    assert [r.query["page"] for r in fake.requests if "inbox" in r.path] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("account_zone", ["America/New_York", "Asia/Tokyo"])
async def test_a_wrong_timezone_shifts_the_dates_only(
    fake: FakeSmstools, gateway: Smstools, account_zone: str
) -> None:
    # The account writes local time; we read it as UTC: rows look hours old or hours ahead.
    fake.zone = ZoneInfo(account_zone)
    fresh = fake.receive_sms(CUSTOMER, "just now")
    offset = datetime.now(fake.zone).utcoffset()
    assert offset is not None
    # The core widens ``since`` by the connector's margin, which covers any zone.
    assert gateway.date_margin >= 14 * 3600
    since = datetime.now(UTC) - timedelta(seconds=gateway.date_margin)
    [sms] = await gateway.poll_inbound(since)
    assert sms.provider_id == fresh.id
    assert abs(sms.received_at.timestamp() - (fresh.at + offset.total_seconds())) < 1


async def test_one_inbox_number_and_an_unknown_one(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(inbox=INBOX_NUMBER)
    fake.receive_sms(CUSTOMER, "to our number")
    messages = await gateway.poll_inbound(hours_ago(1))
    assert [m.text for m in messages] == ["to our number"]
    assert any(r.path == f"/v1/message/inbox/{INBOX_NUMBER}" for r in fake.requests)
    wrong = await make(inbox="3200000000")
    with pytest.raises(Terminal, match="error 132"):
        await wrong.poll_inbound(hours_ago(1))


@pytest.mark.parametrize(
    ("status", "raw", "error", "words"),
    [
        (500, None, Retryable, "server error (HTTP 500)"),
        (429, None, RateLimited, "rate limit"),
        (200, b'{"total": 1, "messages": [{"ID": "1"', Retryable, "malformed"),
        (200, b'{"total": 0}', Retryable, "without 'messages'"),
    ],
)
async def test_poll_failures_are_retryable_and_clear(
    fake: FakeSmstools,
    gateway: Smstools,
    status: int,
    raw: bytes | None,
    error: type[Exception],
    words: str,
) -> None:
    fake.fail_next("/v1/message/inbox", status=status, raw=raw, retry_after=3)
    with pytest.raises(Retryable) as caught:
        await gateway.poll_inbound(hours_ago(1))
    assert type(caught.value) is error
    assert words in caught.value.reason
    assert not isinstance(caught.value, Ambiguous)  # reading changes nothing at the vendor


async def test_the_documented_inbox_example_parses(fake: FakeSmstools, gateway: Smstools) -> None:
    documented = payload("inbox.json")["response"]
    fake.fail_next("/v1/message/inbox", status=200, body=documented)
    [sms] = await gateway.poll_inbound(datetime(2024, 1, 1, tzinfo=UTC))
    row = documented["messages"][0]
    assert (sms.provider_id, sms.sender, sms.text) == (row["ID"], "+32470000000", "Hello sms")
    assert sms.received_at == datetime(2024, 1, 1, 12, tzinfo=UTC)  # read as UTC by default
    # and the fake's rows have exactly the documented fields
    fake.receive_sms(CUSTOMER, "x")
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        answer = (await client.get("/v1/message/inbox", headers=_auth(fake))).json()
    assert set(answer) == set(documented)
    assert set(answer["messages"][0]) == set(row)


async def test_images_of_a_polled_sms_come_from_its_conversation(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    fake.media_needs_auth = True
    photo = b"\xff\xd8\xff\xe0 a tiny jpeg"
    files = (("photo.jpg", "image/jpeg", photo),)
    sms = fake.receive_sms(CUSTOMER, "look", files=files, at=time.time() - 60)
    plain = fake.receive_sms(CUSTOMER, "look")  # the same text a minute later, no image
    listed = await gateway.poll_inbound(hours_ago(1))
    assert all(m.attachments == () for m in listed)  # the listing has no images
    messages = await gateway.complete_polled(listed)
    with_image = next(m for m in messages if m.provider_id == sms.id)
    assert next(m for m in messages if m.provider_id == plain.id).attachments == ()
    [attachment] = with_image.attachments
    assert (attachment.content_type, attachment.name, attachment.data) == (
        "image/jpeg",
        "photo.jpg",
        None,
    )
    assert attachment.url is not None
    assert await gateway.fetch_media(attachment.url) == (photo, "image/jpeg")
    # Our keys go to the API's host only: the same file under another host name gets none.
    foreign = attachment.url.replace("127.0.0.1", "localhost")
    with pytest.raises(Terminal, match="HTTP 401"):
        await gateway.fetch_media(foreign)
    assert "x-client-secret" not in fake.requests[-1].headers
    with pytest.raises(Terminal, match="not available"):
        await gateway.fetch_media(attachment.url.rsplit("/", 2)[0] + "/gone/photo.jpg")


async def test_a_conversation_refusal_does_not_hold_up_the_text(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    fake.receive_sms(CUSTOMER, "hello", files=(("a.png", "image/png", b"png"),))
    fake.fail_next("/v1/conversation/", status=404, body={"error": "133", "errorMsg": "nope"})
    messages = await gateway.complete_polled(await gateway.poll_inbound(hours_ago(1)))
    assert [(m.text, m.attachments) for m in messages] == [("hello", ())]


async def test_without_fetch_attachments_no_conversation_is_asked(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(fetch_attachments=False)
    fake.receive_sms(CUSTOMER, "hello", files=(("a.png", "image/png", b"png"),))
    messages = await gateway.complete_polled(await gateway.poll_inbound(hours_ago(1)))
    assert [(m.text, m.attachments) for m in messages] == [("hello", ())]
    assert not any(r.path.startswith("/v1/conversation/") for r in fake.requests)


# status and history --------------------------------------------------------------------------


def row(sms_id: int, provider_id: str, to: str, status: Status = Status.QUEUED) -> Outbox:
    return Outbox(sms_id, 1, "tools", to, "text", status, provider_id=provider_id)


@pytest.mark.parametrize(
    ("raw", "detail", "status", "reason"),
    [
        ("", None, Status.QUEUED, None),
        (None, None, Status.QUEUED, None),
        ("SUBMITTED", None, Status.SENT, None),
        (0, None, Status.SENT, None),
        ("BUFFERED", None, Status.SENT, None),
        ("UNKNOWN", None, Status.SENT, None),
        ("9", None, Status.SENT, None),
        ("DELIVERED", None, Status.DELIVERED, None),
        (1, None, Status.DELIVERED, None),
        ("NOT DELIVERED", None, Status.FAILED, "not delivered to the handset"),
        (2, None, Status.FAILED, "not delivered to the handset"),
        ("REJECTED", None, Status.FAILED, "rejected by the operator"),
        (5, 10, Status.FAILED, "rejected by the operator: receiver number invalid or unknown"),
        ("REJECTED", "11", Status.FAILED, "rejected by the operator: receiver temporarily"),
        ("SOMETHING NEW", None, Status.SENT, None),  # the contract's rule for unknown words
    ],
)
async def test_status_mapping(raw: Any, detail: Any, status: Status, reason: str | None) -> None:
    mapped, raw_status, why = map_status(raw, detail)
    assert mapped is status
    assert raw_status.startswith("" if raw is None else str(raw))
    assert (why is None) if reason is None else (why or "").startswith(reason)


async def test_status_is_read_from_each_numbers_conversation(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    other = "+32470000002"
    a = (await gateway.send(outbound(1, "a"))).provider_id or ""
    b = (await gateway.send(outbound(2, "b"))).provider_id or ""
    c = (await gateway.send(outbound(3, "c", to=other))).provider_id or ""
    d = (await gateway.send(outbound(4, "d", to=other))).provider_id or ""
    fake.set_status(a, "DELIVERED")
    fake.set_status(b, "NOT DELIVERED")
    fake.set_status(c, "SUBMITTED")  # d: no status yet
    fake.requests.clear()
    sent = [row(1, a, CUSTOMER), row(2, b, CUSTOMER), row(3, c, other), row(4, d, other)]
    updates = await gateway.poll_status(sent)
    got = {u.provider_id: (u.status, u.raw_status, u.reason) for u in updates}
    assert got == {
        a: (Status.DELIVERED, "DELIVERED", None),
        b: (Status.FAILED, "NOT DELIVERED", "not delivered to the handset"),
        c: (Status.SENT, "SUBMITTED", None),
    }
    assert sorted(r.path for r in fake.requests) == [
        "/v1/conversation/32470000001",
        "/v1/conversation/32470000002",
    ]
    # Nothing older than what we already show is reported again (order is the core's job too).
    again = await gateway.poll_status([row(3, c, other, Status.SENT), row(1, a, CUSTOMER)])
    assert [(u.provider_id, u.status) for u in again] == [(a, Status.DELIVERED)]


async def test_status_pages_back_for_older_messages(
    fake: FakeSmstools, make: Callable[..., Any]
) -> None:
    gateway = await make(page_size=2)
    old = (await gateway.send(outbound(1, "old"))).provider_id or ""
    for i in range(4):
        fake.receive_sms(CUSTOMER, f"chatter {i}")
    fake.set_status(old, "DELIVERED")
    updates = await gateway.poll_status([row(1, old, CUSTOMER)])
    assert [(u.provider_id, u.status) for u in updates] == [(old, Status.DELIVERED)]


async def test_history_is_oldest_first_with_stable_keys(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    now = time.time()
    fake.receive_sms(CUSTOMER, "question", at=now - 120)
    await gateway.send(outbound(1, "answer"))
    fake.receive_sms("+32470000002", "someone else")
    items = await gateway.history(CUSTOMER, 10)
    assert [(i.outgoing, i.text) for i in items] == [(False, "question"), (True, "answer")]
    assert items[0].provider_id == (await gateway.history(CUSTOMER, 10))[0].provider_id
    assert (items[0].provider_id or "").startswith("sha256:")  # the vendor gives no id
    assert items[1].provider_id == fake.sent[0].messageid
    assert items[0].at is not None
    assert abs(items[0].at.timestamp() - (now - 120)) < 1
    assert [i.text for i in await gateway.history(CUSTOMER, 1)] == ["answer"]


async def test_the_seed_conversation_parses_for_history_and_status(
    fake: FakeSmstools, gateway: Smstools
) -> None:
    documented = payload("conversation.json")["response"]
    fake.fail_next("/v1/conversation/", status=200, body=documented)
    items = await gateway.history("+32470000000", 50)
    assert [(i.outgoing, i.text) for i in items] == [
        (False, "Inbound message"),
        (True, "Outbound message"),
    ]
    assert items[1].at == datetime(2025, 6, 5, 8, 44, 46, tzinfo=UTC)
    fake.fail_next("/v1/conversation/", status=200, body=documented)
    outbound_id = documented["conversation"][0]["messageId"]
    updates = await gateway.poll_status([row(1, outbound_id, "+32470000000")])
    assert [(u.status, u.raw_status) for u in updates] == [(Status.DELIVERED, "DELIVERED")]
    # The fake's items have exactly the seed's fields.
    fake.receive_sms(CUSTOMER, "in", files=(("p.jpg", "image/jpeg", b"x"),))
    await gateway.send(outbound(1, "out"))
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        answer = (await client.get("/v1/conversation/32470000001", headers=_auth(fake))).json()
    assert set(answer) == set(documented)
    for item in answer["conversation"]:
        assert set(item) == set(documented["conversation"][0])
    assert set(answer["conversation"][1]["file"][0]) == set(
        documented["conversation"][1]["file"][0]
    )


# webhooks --------------------------------------------------------------------------------------


class Receiver(WebhookReceiver):
    """A loopback endpoint that hands each request to the current gateway's ``parse_webhook``."""

    def __init__(self) -> None:
        super().__init__("tools", self.parse)
        self.gateway: Smstools | None = None
        self.events: list[Any] = []

    def parse(self, call: WebhookRequest) -> Response:
        assert self.gateway is not None
        try:
            events = self.gateway.parse_webhook(call)
        except WebhookRejected as exc:
            return JSONResponse({"error": exc.reason}, exc.status)
        self.events.append(events)
        return JSONResponse({"status": "accepted"}, 202)

    def clear(self) -> None:
        self.got.clear()
        self.events.clear()


_receiver, receiver = per_module("receiver", lambda: Receiver().serving(), Receiver.clear)


@pytest.fixture
def hook(receiver: Receiver, gateway: Smstools) -> Receiver:
    receiver.gateway = gateway
    return receiver


async def test_inbox_message_webhook_as_the_sample_shows_it(
    fake: FakeSmstools, hook: Receiver
) -> None:
    sms = fake.receive_sms(CUSTOMER, "Hi there")
    response = await fake.deliver_inbox_message(f"{hook.url}/{TOKEN}", sms)
    assert response.status_code == 202
    [inbound] = hook.events[0].inbound
    assert (inbound.sender, inbound.text, inbound.device) == (CUSTOMER, "Hi there", OUR_NUMBER)
    assert inbound.provider_id.startswith("sha256:")
    # The documented sample itself, not batched this time.
    sample = payload("webhook_inbox_message.json")["payload"]
    response = await fake.post_webhook(f"{hook.url}/{TOKEN}", sample[0])
    assert response.status_code == 202
    assert hook.events[1].inbound[0].text == "Hi"


async def test_inbox_message_keys_are_stable_with_a_vendor_date_or_id(
    fake: FakeSmstools, hook: Receiver
) -> None:
    sms = fake.receive_sms(CUSTOMER, "ok")
    url = f"{hook.url}/{TOKEN}"
    await fake.deliver_inbox_message(url, sms, date="2025-06-05 10:44:46")
    await fake.deliver_inbox_message(url, sms, date="2025-06-05 10:44:46")  # a redelivery
    await fake.deliver_inbox_message(url, sms, date="2025-06-05 10:45:02")  # "ok" again
    await fake.deliver_inbox_message(url, sms, ID=sms.id)  # an id wins: polling uses it too
    keys = [e.inbound[0].provider_id for e in hook.events]
    assert keys[0] == keys[1] != keys[2]
    assert keys[3] == sms.id
    # A zone-less date is read in the configured zone: UTC unless told otherwise.
    assert hook.events[0].inbound[0].received_at == datetime(2025, 6, 5, 10, 44, 46, tzinfo=UTC)


async def test_a_redelivered_sample_without_id_or_date_is_one_sms(gateway: Smstools) -> None:
    """The documented sample has neither id nor date: a redelivery a minute later must keep
    its key, or the chat shows the SMS twice."""
    body = json.dumps(payload("webhook_inbox_message.json")["payload"]).encode()
    bucket = 1_750_000_200.0  # the start of a 10-minute bucket (a multiple of 600 s)

    def key(at: float, data: bytes = body) -> str:
        [sms] = gateway.parse_webhook(WebhookRequest("tools", TOKEN, {}, data, at)).inbound
        return sms.provider_id

    first = key(bucket + 10)
    assert key(bucket + 11) == key(bucket + 70) == key(bucket + 599) == first
    other = body.replace(b'"Hi"', b'"Hi again"')
    assert key(bucket + 70, other) != first
    # The documented limit: the same text from the same number in the next bucket is new.
    assert key(bucket + 600) != first


async def test_delivery_reports_submitted_then_delivered(
    fake: FakeSmstools, gateway: Smstools, hook: Receiver
) -> None:
    provider_id = (await gateway.send(outbound())).provider_id or ""
    url = f"{hook.url}/{TOKEN}"
    await fake.deliver_delivery_report(url, provider_id, "DELIVERED")  # out of order
    await fake.deliver_delivery_report(url, provider_id, "SUBMITTED", batched=False)
    await fake.deliver_delivery_report(url, provider_id, "DELIVERED")  # redelivered
    await fake.deliver_delivery_report(url, provider_id, "REJECTED", detail=10)
    updates = [e.updates[0] for e in hook.events]
    assert [(u.provider_id, u.status) for u in updates] == [
        (provider_id, Status.DELIVERED),
        (provider_id, Status.SENT),
        (provider_id, Status.DELIVERED),
        (provider_id, Status.FAILED),
    ]
    assert updates[3].reason == "rejected by the operator: receiver number invalid or unknown"
    assert updates[3].raw_status == "REJECTED detail 10"
    ids = [e.event_id for e in hook.events]
    assert ids[0] == ids[2]  # the core drops the redelivery
    assert len({ids[0], ids[1], ids[3]}) == 3
    sample = payload("webhook_delivery_report.json")["payload"]
    await fake.post_webhook(url, sample)
    assert hook.events[-1].updates[0].status is Status.DELIVERED
    assert fake.sent[0].status == "REJECTED"  # the fake's conversation tells the same story


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/wrong-token-0123456789", [{"webhook_type": "inbox_message"}], 403, "token"),
        ("", [{"webhook_type": "inbox_message"}], 401, "missing webhook token"),
        (f"/{TOKEN}", b"[{", 400, "malformed JSON"),
        (f"/{TOKEN}", b"42", 400, "expected an object"),
        (f"/{TOKEN}", [{"message": {}}], 422, "webhook_type"),
        (f"/{TOKEN}", [{"webhook_type": "inbox_message", "message": {}}], 422, "sender"),
        (
            f"/{TOKEN}",
            [{"webhook_type": "inbox_message", "message": {"sender": "3247", "content": []}}],
            422,
            "must be a string",
        ),
        (
            f"/{TOKEN}",
            [{"webhook_type": "delivery_report", "message": {"status": "DELIVERED"}}],
            422,
            "messageid",
        ),
        (f"/{TOKEN}", [{"webhook_type": "delivery_report", "message": "x"}], 422, "object"),
    ],
)
async def test_bad_webhooks_are_refused_with_a_clear_4xx(
    fake: FakeSmstools, hook: Receiver, path: str, body: Any, status: int, words: str
) -> None:
    response = await fake.post_webhook(hook.url + path, body)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert TOKEN not in response.text
    assert hook.events == []


async def test_other_webhook_types_are_ignored(fake: FakeSmstools, hook: Receiver) -> None:
    await fake.post_webhook(f"{hook.url}/{TOKEN}", [{"webhook_type": "optout"}])
    [events] = hook.events
    assert (events.inbound, events.updates) == ((), ())
    assert "optout" in (events.ignored or "")


# configuration -------------------------------------------------------------------------------


def parse(section: dict[str, Any]) -> SmstoolsConfig:
    config = parse_config(
        {
            "store": {"url": "sqlite:///x.db"},
            "gateways": [section],
            "chats": [{"name": "support", "type": "telegram", "bot_token": "1:a", "chat_id": -1}],
            "routes": [{"gateway": "tools", "chat": "support"}],
        },
        environ={},
    )
    gateway = config.gateway("tools")
    assert isinstance(gateway, SmstoolsConfig)
    return gateway


GOOD = {
    "name": "tools",
    "type": "smstools",
    "client_id": "id",
    "client_secret": "s3cr3t-value-xyz",
    "sender": "+32460260667",
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"client_secret": None}, "gateways[0].client_secret: "),
        ({"sender": None}, "gateways[0].sender: "),
        ({"sender": "32460260667"}, "must start with '+'"),
        ({"sender": "Our Shop!"}, "1 to 11 letters or digits"),
        ({"sender": "TwelveLetter"}, "1 to 11 letters or digits"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"receive": "webhook"}, "needs webhook_token"),
        ({"receive": "webhook", "webhook_token": "short"}, "at least 16 characters"),
        (
            {"receive": "both", "webhook_token": TOKEN},
            "receive: both is not possible with Smstools",
        ),
        (
            {"receive": "webhook", "webhook_token": TOKEN, "safety_poll_interval": 600},
            "safety_poll_interval must be 0 with Smstools",
        ),
        ({"page_size": 5000}, "gateways[0].page_size"),
        ({"clientid": "typo"}, "gateways[0].clientid"),
    ],
)
async def test_config_errors_name_the_key(change: dict[str, Any], problem: str) -> None:
    section = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        parse(section)
    assert problem in str(caught.value)
    assert "s3cr3t-value-xyz" not in str(caught.value)


async def test_a_good_config_parses() -> None:
    polled = parse(GOOD)
    assert (polled.sender, polled.receive, polled.webhook_token) == ("+32460260667", "poll", None)
    assert polled.client_secret.get_secret_value() == "s3cr3t-value-xyz"
    hooked = parse({**GOOD, "sender": "Shop", "receive": "webhook", "webhook_token": TOKEN})
    assert (hooked.sender, hooked.receive) == ("Shop", "webhook")
    assert hooked.webhook_token is not None and hooked.webhook_token.get_secret_value() == TOKEN
