"""Every gateway's webhook parser, fed any JSON or form body with valid credentials.

The property: our models (with the types they promise) or a ``WebhookRejected`` with a 4xx
status, never another exception (which the web layer would turn into a 5xx).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from fuzz_strategies import ids, json_bodies, json_values, objects, phones, stamps, texts, times
from fuzz_support import (
    OFFLINE_CREDENTIALS,
    TOKEN,
    WEBHOOK_SETTINGS,
    body_digest_query,
    signed_headers,
)
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from bridge.errors import WebhookRejected
from bridge.models import (
    Attachment,
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookEvents,
    WebhookRequest,
)
from bridge.ports import ReceivesWebhooks
from connectors import GATEWAYS

BASE = "https://bridge.example.com/webhooks/sms"
# Finding one accepted payload is enough: no shrinking it to the simplest one.
REACH = settings(max_examples=1000, database=None, phases=[Phase.generate])
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# -- payloads ------------------------------------------------------------------------------------

attachments = st.lists(
    objects(
        {"contentType": st.just("image/png")},
        {"name": texts, "data": st.just("aGVsbG8="), "partId": st.integers(0, 3)},
    ),
    max_size=2,
)
SHAPES: dict[str, tuple[bool, st.SearchStrategy[Any]]] = {
    # (served at the token URL, payloads)
    "smsmobileapi-plain": (
        True,
        objects(
            {"guid": ids, "number": phones, "message": texts},
            {"date": times, "hour": times, "time_received": times},
        ),
    ),
    "smsmobileapi-v2": (
        False,
        objects(
            {
                "id": ids,
                "type": st.sampled_from(
                    ["sms.received", "sms.sent", "sms.failed", "sms.api.submitted"]
                ),
                "data": objects(
                    {"guid": ids, "from": phones, "message": texts},
                    {
                        "received_at": times,
                        "alias": texts,
                        "device_id": ids,
                        "guid_message": ids,
                        "message_id": ids,
                        "reason": texts,
                        "error": texts,
                    },
                ),
            },
            {"occurred_at": times},
        ),
    ),
    "smsgateway24": (
        True,
        objects(
            {"sms_id": ids, "device_id": st.sampled_from([260, "260"])},
            {
                "address": phones,
                "body": texts,
                "sim": st.integers(0, 2),
                "status_id": st.integers(0, 12),
                "status_message": texts,
                "img_url": st.just("https://example.com/a.jpg"),
                "type": st.just("img"),
            },
        ),
    ),
    "ip1": (
        True,
        objects(
            {"direction": st.sampled_from(["mo", "mt", "1", "0", ""])},
            {
                "id": ids,
                "batchId": ids,
                "messageId": ids,
                "code": st.integers(100, 520),
                "body": texts,
                "sender": phones,
                "recipient": phones,
                "modified": times,
                "statuses": st.lists(
                    objects({"code": st.integers(100, 520)}, {"created": times}), max_size=2
                ),
            },
        ),
    ),
    "smstools": (
        True,
        objects(
            {
                "webhook_type": st.sampled_from(["inbox_message", "delivery_report"]),
                "message": objects(
                    {"sender": phones, "content": texts},
                    {
                        "message": texts,
                        "receiver": phones,
                        "date": times,
                        "datetime": times,
                        "unixDatetime": stamps,
                        "ID": ids,
                        "messageid": ids,
                        "status": st.sampled_from(["0", "1", "2", "DELIVERED", "odd"]),
                        "detail": st.sampled_from(["10", "11", 0]),
                        "file": st.lists(
                            objects(
                                {"image": st.just("https://x/y.png")},
                                {"name": texts, "mime": st.just("image/")},
                            ),
                            max_size=2,
                        ),
                    },
                ),
            },
            {},
        ),
    ),
    "smsgate": (
        True,
        objects(
            {
                "id": ids,
                "event": st.sampled_from(
                    [
                        "sms:received",
                        "mms:downloaded",
                        "sms:sent",
                        "sms:delivered",
                        "sms:failed",
                        "sms:cancelled",
                    ]
                ),
                "payload": objects(
                    {"phoneNumber": phones, "message": texts},
                    {
                        "sender": phones,
                        "receivedAt": times,
                        "messageId": st.sampled_from(["smsbridge-1", "other"]),
                        "simNumber": st.integers(0, 3),
                        "body": texts,
                        "subject": texts,
                        "partsCount": st.integers(0, 3),
                        "reason": texts,
                        "attachments": attachments,
                    },
                ),
            },
            {"deviceId": ids},
        ),
    ),
}

TWILIO_FIELDS = [
    "MessageSid", "SmsSid", "SmsMessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
    "MediaContentType0", "MediaUrl1", "MessageStatus", "ErrorCode", "ErrorMessage",
]  # fmt: skip
form_text = st.text(max_size=20) | st.sampled_from(
    [
        "+15551234567",
        "SM1",
        "1",
        "11",
        "²",
        "received",
        "delivered",
        "failed",
        "http://x/y",
        "ftp://x",
    ]
)
twilio_forms = st.lists(
    st.tuples(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=8), form_text), max_size=8
)

# -- the property ---------------------------------------------------------------------------------


def gateway(kind: str) -> ReceivesWebhooks:
    spec = GATEWAYS[kind]
    section = {"name": kind, "type": kind, "receive": "webhook"}
    section |= OFFLINE_CREDENTIALS[kind] | WEBHOOK_SETTINGS[kind]
    built = spec.factory(spec.config.model_validate(section), f"{BASE}/{kind}")
    assert isinstance(built, ReceivesWebhooks)
    return built


def request(
    kind: str, body: bytes, *, token: bool, method: str = "POST", query: str = ""
) -> WebhookRequest:
    url = f"{BASE}/{kind}" + (f"/{TOKEN}" if token else "") + (f"?{query}" if query else "")
    headers = {k.lower(): v for k, v in signed_headers(kind, url, method, body).items()}
    return WebhookRequest(
        gateway=kind,
        token=TOKEN if token else None,
        headers=headers | {"content-type": "application/json"},
        body=body,
        received_at=time.time(),
        url=url,
        method=method,
        query={},
    )


def outcome(parser: ReceivesWebhooks, call: WebhookRequest) -> WebhookEvents | None:
    """The events, or None for a clean 4xx refusal; anything else fails the test."""
    try:
        events = parser.parse_webhook(call)
    except WebhookRejected as exc:
        refused = exc
    else:
        check_models(events)
        return events
    assert 400 <= refused.status < 500, refused
    assert isinstance(refused.reason, str) and refused.reason
    return None


def _optional(value: object, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def check_models(events: WebhookEvents) -> None:
    assert isinstance(events, WebhookEvents)
    assert _optional(events.event_id, str) and _optional(events.ignored, str)
    for sms in events.inbound:
        assert isinstance(sms, InboundSms)
        for text in (sms.gateway, sms.provider_id, sms.sender, sms.text):
            assert isinstance(text, str)
        assert sms.provider_id and sms.sender.strip()
        assert isinstance(sms.received_at, datetime) and sms.received_at.tzinfo is not None
        sms.received_at.timestamp()
        assert _optional(sms.alias, str) and _optional(sms.device, str) and _optional(sms.sim, int)
        for file in sms.attachments:
            assert isinstance(file, Attachment) and isinstance(file.content_type, str)
            assert _optional(file.name, str) and _optional(file.url, str)
            assert _optional(file.data, bytes)
            assert (file.data is None) != (file.url is None)
    for update in events.updates:
        assert isinstance(update, DeliveryUpdate) and isinstance(update.status, Status)
        assert isinstance(update.provider_id, str) and update.provider_id
        assert isinstance(update.raw_status, str) and _optional(update.reason, str)
        assert _optional(update.event_id, str)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_any_json_body_with_valid_credentials_parses_or_is_refused_with_a_4xx(shape: str) -> None:
    kind = shape.split("-")[0]
    parser = gateway(kind)
    token, payloads = SHAPES[shape]

    @FUZZ
    @given(body=json_bodies(payloads))
    def check(body: bytes) -> None:
        outcome(parser, request(kind, body, token=token))

    check()


def test_twilio_any_form_signed_parses_or_is_refused_with_a_4xx() -> None:
    parser = gateway("twilio")

    @FUZZ
    @given(fields=twilio_forms, raw=st.binary(max_size=40), use_raw=st.booleans())
    def check(fields: list[tuple[str, str]], raw: bytes, use_raw: bool) -> None:
        body = raw if use_raw else urlencode(fields).encode()
        outcome(parser, request("twilio", body, token=False))

    check()


def test_twilio_signed_get_and_json_bodies_parse_or_are_refused_with_a_4xx() -> None:
    parser = gateway("twilio")

    @FUZZ
    @given(fields=twilio_forms, body=json_bodies(json_values))
    def check(fields: list[tuple[str, str]], body: bytes) -> None:
        query = urlencode(fields)
        call = request("twilio", b"", token=False, method="GET", query=query)
        outcome(parser, replace(call, query=dict(fields)))
        outcome(parser, request("twilio", body, token=False, query=body_digest_query(body)))

    check()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_payloads_reach_accepted_events(shape: str) -> None:
    """Without this, a parser refusing everything would pass the properties above."""
    kind = shape.split("-")[0]
    parser = gateway(kind)
    token, payloads = SHAPES[shape]

    def accepted(body: bytes) -> bool:
        events = outcome(parser, request(kind, body, token=token))
        return events is not None and bool(events.inbound or events.updates)

    find(json_bodies(payloads), accepted, settings=REACH)


def test_twilio_forms_reach_accepted_events() -> None:
    parser = gateway("twilio")

    def accepted(fields: list[tuple[str, str]]) -> bool:
        events = outcome(parser, request("twilio", urlencode(fields).encode(), token=False))
        return events is not None and bool(events.inbound or events.updates)

    find(twilio_forms, accepted, settings=REACH)
