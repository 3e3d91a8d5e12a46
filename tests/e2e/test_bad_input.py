"""Bad webhook input gets a clear 4xx with a reason and leaves nothing half-stored."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import CUSTOMER, GROUP, HOOK_TOKEN, Harness

from bridge.errors import InvalidSender
from bridge.models import InboundSms, WebhookEvents
from bridge.store import schema
from connectors.sms.smsmobileapi import fake_webhooks as wh

MIB = 1024 * 1024
# Every table a webhook could write to (cursors belong to polling, which these bridges don't do).
WRITTEN_BY_WEBHOOKS = (
    schema.conversations,
    schema.threads,
    schema.inbound,
    schema.outbox,
    schema.chat_jobs,
    schema.chat_messages,
    schema.seen_events,
    schema.orphan_updates,
)

Send = Callable[[Harness, httpx.AsyncClient], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Case:
    id: str
    send: Send
    status: int
    reason: str  # a fragment the "error" must contain (case-insensitive)


# -- building requests ---------------------------------------------------------------------


def plain_body(**drop_or_set: Any) -> bytes:
    """A legacy webhook body; a keyword set to None drops that field."""
    payload: dict[str, Any] = wh.plain_payload(
        now=time.time(), received_at=time.time(), message="hello", number=CUSTOMER, guid="G-1"
    )
    for key, value in drop_or_set.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    return wh.encode(payload)


def received_data(*, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    data = wh.received_data(
        guid="G-1",
        number=CUSTOMER,
        message="hello",
        received_at=time.time(),
        alias=None,
        device="d",
    )
    return {k: v for k, v in data.items() if k not in drop}


def envelope_body(data: Any = None, *, drop: tuple[str, ...] = ()) -> bytes:
    """A Webhook V2 ``sms.received`` envelope; ``drop`` removes envelope fields."""
    envelope = wh.v2_envelope(
        "sms.received", received_data() if data is None else data, now=time.time()
    )
    return wh.encode({k: v for k, v in envelope.items() if k not in drop})


def signed(
    harness: Harness,
    body: bytes,
    *,
    timestamp: int | None = None,
    secret: str | None = None,
    signed_body: bytes | None = None,
) -> dict[str, str]:
    """Correct V2 headers for ``body`` unless a keyword says which part to get wrong."""
    return wh.v2_headers(
        event_type="sms.received",
        event_id="evt-bad-input",
        timestamp=int(time.time()) if timestamp is None else timestamp,
        secret=harness.gateway.webhook_secret if secret is None else secret,
        body=body if signed_body is None else signed_body,
    )


def post_plain(body: bytes, token: str = HOOK_TOKEN, gateway: str = "office") -> Send:
    async def send(harness: Harness, client: httpx.AsyncClient) -> httpx.Response:
        url = f"{harness.base}/webhooks/sms/{gateway}/{token}"
        headers = {"Content-Type": "application/json"}
        return await client.post(url, content=body, headers=headers)

    return send


def post_signed(body: bytes, gateway: str = "office", **wrong: Any) -> Send:
    async def send(harness: Harness, client: httpx.AsyncClient) -> httpx.Response:
        url = f"{harness.base}/webhooks/sms/{gateway}"
        return await client.post(url, content=body, headers=signed(harness, body, **wrong))

    return send


def post_with_headers(body: bytes, keep: tuple[str, ...]) -> Send:
    """A signed request stripped of every V2 header not in ``keep``."""

    async def send(harness: Harness, client: httpx.AsyncClient) -> httpx.Response:
        headers = {
            k: v
            for k, v in signed(harness, body).items()
            if not k.lower().startswith("x-smsmobileapi-") or k in keep
        }
        return await client.post(harness.signed_hook, content=body, headers=headers)

    return send


def oversized() -> bytes:
    """Valid JSON just over 1 MiB, so only its size can be the reason to refuse it."""
    return json.dumps({"guid": "G-1", "number": CUSTOMER, "message": "x" * MIB}).encode()


def post_chunked(signed_v2: bool) -> Send:
    """An oversized body without Content-Length (chunked), correctly signed when ``signed_v2``."""

    async def send(harness: Harness, client: httpx.AsyncClient) -> httpx.Response:
        body = oversized()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 64 * 1024):
                yield body[start : start + 64 * 1024]

        if signed_v2:
            url, headers = harness.signed_hook, signed(harness, body)
        else:
            url, headers = harness.plain_hook, {"Content-Type": "application/json"}
        headers.pop("Content-Length", None)
        return await client.post(url, content=chunks(), headers=headers)

    return send


NESTED = b"[" * 100_000 + b"]" * 100_000  # well-formed, under the size limit, absurdly deep

CASES = [
    # the plain webhook (token in the URL)
    Case("plain-malformed-json", post_plain(b'{"guid": "G-1", '), 400, "json"),
    Case("plain-not-utf8", post_plain(b'{"guid": "\xc3\x28"}'), 400, "json"),
    Case("plain-json-array", post_plain(b'["guid", "number"]'), 400, "object"),
    Case("plain-json-string", post_plain(b'"hello"'), 400, "object"),
    Case("plain-deeply-nested-json", post_plain(NESTED), 400, "json"),
    Case("plain-missing-guid", post_plain(plain_body(guid=None)), 422, "missing field 'guid'"),
    Case("plain-missing-number", post_plain(plain_body(number=None)), 422, "'number'"),
    Case("plain-guid-not-a-string", post_plain(plain_body(guid={"a": 1})), 422, "'guid'"),
    # senders that are no address: no thread may ever be opened for them
    Case("plain-number-true", post_plain(plain_body(number=True)), 422, "'number' must be"),
    Case("plain-number-40-digits", post_plain(plain_body(number="9" * 40)), 422, "'number' is not"),
    Case("plain-number-float", post_plain(plain_body(number=4.6e10)), 422, "'number' must be"),
    Case("plain-number-control", post_plain(plain_body(number="\x00123")), 422, "'number' holds"),
    Case("plain-unknown-token", post_plain(plain_body(), token="not-the-token"), 403, "token"),
    Case("plain-unknown-gateway", post_plain(plain_body(), gateway="unknown"), 404, "unknown"),
    Case("plain-too-large", post_plain(oversized()), 413, "body over"),
    Case("plain-too-large-chunked", post_chunked(signed_v2=False), 413, "body over"),
    # the signed Webhook V2
    Case("v2-malformed-json", post_signed(b'{"id": "e", "type": '), 400, "json"),
    Case("v2-json-array", post_signed(b"[1, 2, 3]"), 400, "object"),
    Case("v2-deeply-nested-json", post_signed(NESTED), 400, "json"),
    Case(
        "v2-missing-data-guid",
        post_signed(envelope_body(received_data(drop=("guid",)))),
        422,
        "missing field 'data.guid'",
    ),
    Case(
        "v2-missing-data-from",
        post_signed(envelope_body(received_data(drop=("from",)))),
        422,
        "'data.from'",
    ),
    Case(
        "v2-from-true",
        post_signed(envelope_body(received_data() | {"from": True})),
        422,
        "field 'data.from' must be",
    ),
    Case(
        "v2-from-nan",
        post_signed(envelope_body(received_data() | {"from": float("nan")})),
        422,
        "field 'data.from' must be",
    ),
    Case(
        "v2-from-16-digits",
        post_signed(envelope_body(received_data() | {"from": "+1234567890123456"})),
        422,
        "field 'data.from' is not",
    ),
    Case("v2-missing-id", post_signed(envelope_body(drop=("id",))), 422, "missing field 'id'"),
    Case("v2-missing-data", post_signed(envelope_body(drop=("data",))), 422, "'data'"),
    Case("v2-data-not-an-object", post_signed(envelope_body(data=["x"])), 422, "'data'"),
    Case(
        "v2-bad-signature", post_signed(envelope_body(), secret="not-the-secret"), 401, "signature"
    ),
    Case(
        "v2-body-changed-after-signing",
        post_signed(envelope_body(), signed_body=envelope_body()),
        401,
        "signature",
    ),
    Case(
        "v2-stale-timestamp",
        post_signed(envelope_body(), timestamp=int(time.time()) - 3600),
        401,
        "stale",
    ),
    Case(
        "v2-future-timestamp",
        post_signed(envelope_body(), timestamp=int(time.time()) + 3600),
        401,
        "future",
    ),
    Case("v2-missing-signature-headers", post_with_headers(envelope_body(), ()), 401, "missing"),
    Case(
        "v2-missing-timestamp-header",
        post_with_headers(envelope_body(), ("X-SMSMobileAPI-Signature",)),
        401,
        "missing",
    ),
    Case("v2-unknown-gateway", post_signed(envelope_body(), gateway="unknown"), 404, "unknown"),
    Case("v2-too-large", post_signed(oversized()), 413, "body over"),
    Case("v2-too-large-chunked", post_chunked(signed_v2=True), 413, "body over"),
]


# -- checks --------------------------------------------------------------------------------


async def row_counts(harness: Harness) -> dict[str, int]:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return {
            table.name: (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
            or 0
            for table in WRITTEN_BY_WEBHOOKS
        }


async def assert_nothing_happened(harness: Harness) -> None:
    assert await row_counts(harness) == dict.fromkeys((t.name for t in WRITTEN_BY_WEBHOOKS), 0)
    await harness.settled()
    assert harness.telegram.sent_messages(GROUP) == []
    assert harness.telegram.count("sendMessage") == 0
    assert harness.telegram.count("createForumTopic") == 0


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_webhook_gets_a_clear_4xx_and_stores_nothing(
    harness: Harness, client: httpx.AsyncClient, case: Case
) -> None:
    response = await case.send(harness, client)
    assert response.status_code < 500, response.text
    assert response.status_code == case.status, response.text
    body = response.json()
    assert isinstance(body.get("error"), str), body
    assert case.reason.lower() in body["error"].lower(), body
    await assert_nothing_happened(harness)


async def test_the_bridge_still_works_after_bad_input(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    """The same requests, done right, are accepted: the refusals above were for their faults."""
    for case in CASES:
        await case.send(harness, client)
    plain = await post_plain(plain_body())(harness, client)
    assert plain.status_code == 202, plain.text
    v2 = await post_signed(envelope_body(received_data() | {"guid": "G-2"}))(harness, client)
    assert v2.status_code == 202, v2.text
    await harness.telegram.wait_for(lambda: sorted(harness.posts()) == ["hello", "hello"])
    counts = await row_counts(harness)
    assert counts["inbound"] == 2 and counts["conversations"] == 1


async def test_unknown_v2_event_type_is_ignored_and_not_stored(harness: Harness) -> None:
    response = await harness.gateway.deliver_v2(
        harness.signed_hook, "call.missed", {"from": CUSTOMER, "at": wh.iso_z(time.time())}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ignored"
    assert "call.missed" in body["reason"]
    await assert_nothing_happened(harness)


async def test_status_event_for_an_unknown_guid_is_accepted(harness: Harness) -> None:
    response = await harness.gateway.deliver_status_v2(
        harness.signed_hook, "guid-we-never-sent", "sms.sent"
    )
    assert response.status_code in (200, 202), response.text
    assert "error" not in response.json()
    counts = await row_counts(harness)
    assert counts["outbox"] == 0 and counts["chat_jobs"] == 0
    await harness.settled()
    assert harness.telegram.count("sendMessage") == 0
    assert harness.telegram.count("setMessageReaction") == 0


async def test_webhook_for_a_gateway_that_only_polls_is_404(
    start_bridge: Callable[..., Any], client: httpx.AsyncClient
) -> None:
    harness: Harness = await start_bridge(gateway={"receive": "poll"})
    for send in (post_plain(plain_body()), post_signed(envelope_body())):
        response = await send(harness, client)
        assert response.status_code == 404, response.text
        assert "office" in response.json()["error"]
    await assert_nothing_happened(harness)


async def test_the_core_opens_no_thread_for_a_sender_a_connector_let_through(
    harness: Harness,
) -> None:
    """Connectors check senders; should one forget, the router still refuses what is no
    address: the webhook is refused, and a polled listing goes on without that row."""
    router = harness.bridge.router
    assert router is not None
    bad = InboundSms("office", "G-bad", "9" * 40, "from nobody", datetime.now(UTC))
    with pytest.raises(InvalidSender):
        await router.ingest("office", WebhookEvents(inbound=(bad,)))
    await assert_nothing_happened(harness)
    good = replace(bad, provider_id="G-good", sender=CUSTOMER, text="from a customer")
    assert await router.ingest("office", WebhookEvents((bad, good)), None, "poll") == 1
    await harness.telegram.wait_for(lambda: harness.posts() == ["from a customer"])
    await harness.idle()
    assert len(harness.topics()) == 1
    assert (await row_counts(harness))["inbound"] == 1
