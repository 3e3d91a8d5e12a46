"""Tests for the SMSMobileAPI fake, driven over real loopback HTTP as the connector will."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import pytest_asyncio
from harness import per_module

from bridge.testing.fake_harness import WebhookReceiver
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

KEY = "test-key"


# One fake and one webhook receiver for the whole module: uvicorn needs ~0.1 s to stop, which
# per-test servers would pay ~20 times over.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def _reset(fake: FakeSmsMobileApi) -> None:
    fake.reset()
    fake.ms_timestamps = False


_served, fake = per_module("fake", lambda: FakeSmsMobileApi(KEY), _reset)
_hook_server, receiver = per_module(
    "receiver", lambda: WebhookReceiver("office").serving(), lambda r: r.got.clear()
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _client(_fake: FakeSmsMobileApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=_fake.base_url, trust_env=False) as c:
        yield c


@pytest.fixture
def client(fake: FakeSmsMobileApi, _client: httpx.AsyncClient) -> httpx.AsyncClient:
    # Requests `fake` so a test asking only for the client still starts from a reset account.
    return _client


async def send(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post("/sendsms/", data={"apikey": KEY, **form})


def verify(secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = 300) -> bool:
    """What a bridge must do: HMAC over the raw bytes, constant-time compare, bounded clock skew."""
    ts = headers["x-smsmobileapi-timestamp"]
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(ts)) <= tolerance
    return fresh and hmac.compare_digest("v1=" + mac, headers["x-smsmobileapi-signature"])


async def test_send_ok_is_recorded(fake: FakeSmsMobileApi, client: httpx.AsyncClient) -> None:
    r = await send(client, recipients="+15551234567", message="Hello", port="2", sIdentifiant="s1")
    assert r.status_code == 200
    result = r.json()["result"]
    assert (result["error"], result["sent"], result["port"]) == (0, "1", 2)
    assert re.fullmatch(r"[0-9a-f]{40}", result["id"])
    assert result["datetime"].endswith("Z")
    [sms] = fake.sent
    assert (sms.guid, sms.recipients, sms.message, sms.sid, sms.port, sms.status) == (
        result["id"],
        "+15551234567",
        "Hello",
        "s1",
        2,
        "Pending",
    )
    # GET without the trailing slash and Bearer auth are accepted too.
    r = await client.get(
        "/sendsms",
        params={"recipients": "+1555", "message": "x"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.json()["result"]["sent"] == "1"
    assert len(fake.sent) == 2
    assert [(q.method, q.path, q.status) for q in fake.requests] == [
        ("POST", "/sendsms/", 200),
        ("GET", "/sendsms/", 200),
    ]
    assert fake.requests[0].params["message"] == "Hello"


@pytest.mark.parametrize("apikey", [None, "wrong"])
async def test_bad_or_missing_apikey_is_403(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient, apikey: str | None
) -> None:
    form = {"recipients": "+1555", "message": "hi"} | ({"apikey": apikey} if apikey else {})
    r = await client.post("/sendsms/", data=form)
    assert r.status_code == 403
    assert r.json() == {"error": 403, "message": "API key invalid or expired"}
    assert fake.sent == []


async def test_bad_parameters(fake: FakeSmsMobileApi, client: httpx.AsyncClient) -> None:
    r = await send(client, message="hi")
    assert r.status_code == 400
    assert r.json() == {"error": 400, "message": "Missing parameter: recipients"}
    r = await send(client, recipients="+1555", message="hi", port="3")
    assert r.status_code == 400
    r = await client.get("/nope/", params={"apikey": KEY})
    assert (r.status_code, r.json()) == (404, {"error": 404, "message": "Not found"})
    assert fake.sent == []


async def test_empty_message_is_200_with_error(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    r = await send(client, recipients="+1555", message="")
    assert r.status_code == 200
    assert r.json() == {"result": {"error": 1, "sent": "0", "message": "Message is empty"}}
    assert fake.sent == []


async def test_getsms_cursor_is_strictly_after(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    b = fake.receive_sms("+1002", "second", timestamp_unix=1_754_951_060, alias="Bo")
    a = fake.receive_sms("+1001", "first", timestamp_unix=1_754_951_050)
    fake.receive_sms("+1003", "other phone", timestamp_unix=1_754_951_070, device="phone-2")
    params = {"apikey": KEY, "sIdentifiantPhone": "office-phone-1"}
    r = await client.get("/getsms/", params=params)
    body = r.json()["result"]
    assert body["error"] == ""
    assert [s["guid"] for s in body["sms"]] == [a.guid, b.guid]  # ascending by time
    assert body["sms"][1] == {
        "id": b.id,
        "sIdentifiantPhone": "office-phone-1",
        "timestamp_unix": 1_754_951_060,
        "message": "second",
        "number": "+1002",
        "guid": b.guid,
        "alias": "Bo",
    }
    r = await client.get("/getsms/", params=params | {"after_timestamp_unix": "1754951050"})
    assert [s["guid"] for s in r.json()["result"]["sms"]] == [b.guid]

    r = await client.get("/getsms/set-read/", params={"apikey": KEY, "guid_message": b.guid})
    assert r.json()["result"]["error"] == 0
    r = await client.get("/getsms/", params=params | {"onlyunread": "yes"})
    assert [s["guid"] for s in r.json()["result"]["sms"]] == [a.guid]


async def test_getsms_millisecond_mode(fake: FakeSmsMobileApi, client: httpx.AsyncClient) -> None:
    fake.ms_timestamps = True
    fake.receive_sms("+1001", "a", timestamp_unix=1_754_951_050)
    b = fake.receive_sms("+1001", "b", timestamp_unix=1_754_951_051)
    r = await client.get(
        "/getsms/", params={"apikey": KEY, "after_timestamp_unix": "1754951050000"}
    )
    assert [(s["guid"], s["timestamp_unix"]) for s in r.json()["result"]["sms"]] == [
        (b.guid, 1_754_951_051_000)
    ]


async def test_sent_log_filters(fake: FakeSmsMobileApi, client: httpx.AsyncClient) -> None:
    ids = [
        (await send(client, recipients=n, message=m)).json()["result"]["id"]
        for n, m in [("+1001", "hello"), ("+1002", "invoice 42"), ("+1003", "bye")]
    ]
    fake.set_status(ids[0], "Success")
    fake.set_status(ids[2], "Error", "No SIM")

    async def log(**params: str) -> list[dict[str, Any]]:
        r = await client.get("/log/sent/sms/", params={"apikey": KEY, **params})
        result = r.json()["result"]
        assert result["count"] == len(result["sms"])
        return list(result["sms"])

    assert [row["guid"] for row in await log()] == ids[::-1]  # newest first
    [row] = await log(guid_message=ids[0])
    assert (row["status"], row["error_api"], row["error_mobile"]) == ("Success", 0, 0)
    assert [row["guid"] for row in await log(keyword="invoice")] == [ids[1]]
    assert [row["guid"] for row in await log(keyword="+1003")] == [ids[2]]
    [row] = await log(error_mobile="1")
    assert (row["guid"], row["status"], row["error_message"]) == (ids[2], "Error", "No SIM")


async def test_conversation_list_merges_both_directions(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    now = int(time.time())
    fake.receive_sms("+1001", "need info", alias="John", timestamp_unix=now - 60)
    out = (await send(client, recipients="+1001", message="sure")).json()["result"]["id"]
    fake.receive_sms("+1002", "unrelated", timestamp_unix=now - 30)
    r = await client.get(
        "/conversation/sms/list/",
        params={"apikey": KEY, "origineConversation": "received", "numero": "+1001"},
    )
    body = r.json()
    assert body["success"] is True
    assert (body["origineConversation"], body["resume"], body["resume_line_how"]) == (
        "received",
        0,
        None,
    )
    [conv] = body["conversations"]
    assert (conv["phone_number"], conv["contact_alias"]) == ("+1001", "John")
    assert [(m["direction"], m["status"], m["message"]) for m in conv["messages"]] == [
        ("incoming", "received", "need info"),
        ("outgoing", "sent", "sure"),
    ]
    assert conv["messages"][1]["message_id"] == out
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", conv["messages"][0]["date"])
    assert conv["messages"][0]["timestamp_utc"].endswith("Z")

    r = await client.post(
        "/conversation/sms/list/", data={"apikey": KEY, "origineConversation": "sent"}
    )
    assert [c["phone_number"] for c in r.json()["conversations"]] == ["+1001"]
    r = await client.get("/conversation/sms/list/", params={"apikey": KEY})
    assert r.json() == {
        "success": False,
        "error": "Missing required parameter: origineConversation",
    }
    r = await client.get("/gateway/mobile/list/", params={"apikey": KEY})
    assert r.json()["result"]["mobiles"][0]["sid"] == "office-phone-1"


async def test_fail_next_500_then_recovers(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    fake.fail_next("/sendsms", count=2)
    for _ in range(2):
        r = await send(client, recipients="+1555", message="hi")
        assert r.status_code == 500
        assert r.json()["error"] == 500
    assert fake.sent == []
    assert (await send(client, recipients="+1555", message="hi")).status_code == 200
    assert len(fake.sent) == 1
    assert [q.status for q in fake.requests] == [500, 500, 200]


async def test_fail_next_429_with_retry_after(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    fake.fail_next("/sendsms/", status=429, retry_after=7)
    r = await send(client, recipients="+1555", message="hi")
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")
    assert r.json() == {"error": 429, "message": "Too Many Requests"}
    assert fake.sent == []


async def test_fail_next_raw_truncated_json(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    fake.fail_next("/getsms/", status=200, raw=b'{"result":{"error":"","sms":[{"id":1,')
    r = await client.get("/getsms/", params={"apikey": KEY})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


async def test_slow_accept_records_but_client_times_out(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    fake.fail_next("/sendsms/", status=200, delay=0.3)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(
            "/sendsms/",
            data={"apikey": KEY, "recipients": "+1555", "message": "hi"},
            timeout=httpx.Timeout(1.0, read=0.05),
        )
    # The gateway accepted it anyway: a blind retry would send the SMS twice.
    assert len(fake.sent) == 1
    assert fake.requests[-1].status == 200


async def test_delayed_error_does_not_record(
    fake: FakeSmsMobileApi, client: httpx.AsyncClient
) -> None:
    fake.fail_next("/sendsms/", status=503, delay=0.05)
    r = await send(client, recipients="+1555", message="hi")
    assert r.status_code == 503
    assert fake.sent == []


async def test_deliver_v2_signature_verifies(
    fake: FakeSmsMobileApi, receiver: WebhookReceiver
) -> None:
    url, got = receiver.url, receiver.got
    sms = fake.receive_sms("+15551234567", "Can you call me back? ✓", alias="Taylor")
    r = await fake.deliver_received_v2(url, sms)
    assert r.status_code == 202
    headers, body = got[0].headers, got[0].body
    assert verify("whsec-test", headers, body)
    envelope = json.loads(body)
    assert set(envelope) == {"id", "type", "api_version", "created_at", "occurred_at", "data"}
    assert envelope["type"] == headers["x-smsmobileapi-event"] == "sms.received"
    assert envelope["id"] == headers["x-smsmobileapi-event-id"] == headers["idempotency-key"]
    assert envelope["api_version"] == "2026-09-22"
    assert envelope["data"] == {
        "guid": sms.guid,
        "from": "+15551234567",
        "message": "Can you call me back? ✓",
        "received_at": envelope["occurred_at"],
        "alias": "Taylor",
        "device_id": "office-phone-1",
    }
    assert headers["content-type"] == "application/json"

    # Overrides produce deliveries a correct bridge must reject.
    await fake.deliver_v2(url, "sms.received", {}, secret="wrong")
    await fake.deliver_v2(url, "sms.received", {}, timestamp=int(time.time()) - 3600)
    await fake.deliver_v2(url, "sms.received", {}, body=b'{"id":', event_id="e-1")
    assert not verify("whsec-test", got[1].headers, got[1].body)
    assert not verify("whsec-test", got[2].headers, got[2].body)
    assert got[3].body == b'{"id":'
    # Signed as sent, so only the JSON parse fails.
    assert verify("whsec-test", got[3].headers, got[3].body)
    assert got[3].headers["idempotency-key"] == "e-1"


async def test_deliver_status_v2_updates_log(
    fake: FakeSmsMobileApi,
    client: httpx.AsyncClient,
    receiver: WebhookReceiver,
) -> None:
    url, got = receiver.url, receiver.got
    guid = (await send(client, recipients="+1555", message="hi")).json()["result"]["id"]
    await fake.deliver_status_v2(url, guid, "sms.failed", reason="No signal")
    data = json.loads(got[0].body)["data"]
    assert (data["guid"], data["to"], data["reason"]) == (guid, "+1555", "No signal")
    assert "failed_at" in data
    assert (fake.sent[0].status, fake.sent[0].error) == ("Error", "No signal")


async def test_plain_webhook_body(fake: FakeSmsMobileApi, receiver: WebhookReceiver) -> None:
    url, got = receiver.url, receiver.got
    sms = fake.receive_sms("+123456789", "Hello, this is a test.", timestamp_unix=1_737_368_090)
    await fake.deliver_plain_webhook(url, sms)
    headers, body = got[0].headers, got[0].body
    payload = json.loads(body)
    assert set(payload) == {"date", "hour", "time_received", "message", "number", "guid"}
    assert payload["time_received"] == "2025-01-20 10:14:50"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", payload["date"])
    assert re.fullmatch(r"\d\d:\d\d:\d\d", payload["hour"])
    assert (payload["message"], payload["number"], payload["guid"]) == (
        "Hello, this is a test.",
        "+123456789",
        sms.guid,
    )
    assert "x-smsmobileapi-signature" not in headers


async def test_wait_for(fake: FakeSmsMobileApi) -> None:
    await fake.wait_for(lambda: True)
    with pytest.raises(AssertionError):
        await fake.wait_for(lambda: False, timeout=0.03)
