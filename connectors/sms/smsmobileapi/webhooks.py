"""SMSMobileAPI webhooks: the legacy unsigned one (URL token) and the signed Webhook V2."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bridge import phone
from bridge.errors import NotFound, Unauthenticated, Unprocessable
from bridge.models import (
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.openapi import DATE, ID, TEXT, header_scheme, obj
from connectors.webhooks import check_timestamp, check_url_token, iso_time, json_object

_V2_STATUS = {
    "sms.api.submitted": Status.QUEUED,
    "sms.sent": Status.SENT,
    "sms.failed": Status.FAILED,
}


def _text(data: dict[str, Any], key: str, *, where: str = "", allow_empty: bool = False) -> str:
    value = data.get(key)
    if value is None:
        raise Unprocessable(f"missing field '{where}{key}'")
    if not isinstance(value, str | int):
        raise Unprocessable(f"field '{where}{key}' must be a string")
    text = str(value)
    if not allow_empty and not text.strip():
        raise Unprocessable(f"field '{where}{key}' is empty")
    return text


def _label(value: Any) -> str | None:
    """An optional name or id: a nicety, so one of an unexpected type is dropped, not refused."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def parse_plain(gateway: str, token: SecretStr | None, request: WebhookRequest) -> WebhookEvents:
    """``{date, hour, time_received, message, number, guid}``; it signs nothing, so the URL's
    secret path segment is what authenticates it."""
    if token is None:
        raise NotFound("this gateway has no plain webhook (set webhook_token)")
    check_url_token(token, request)
    data = json_object(request.body)
    guid = _text(data, "guid")
    number = phone.sender(data.get("number"), "number")
    message = _text(data, "message", allow_empty=True)
    received = iso_time(data.get("time_received")) or datetime.fromtimestamp(
        request.received_at, UTC
    )
    sms = InboundSms(gateway, guid, number, message, received)
    return WebhookEvents(inbound=(sms,))


def verify_v2(secret: SecretStr, max_skew: float, request: WebhookRequest) -> None:
    """``X-SMSMobileAPI-Signature: v1=hex(HMAC_SHA256(secret, f"{timestamp}." + raw body))``."""
    signature = request.headers.get("x-smsmobileapi-signature")
    stamp = request.headers.get("x-smsmobileapi-timestamp")
    if not signature or not stamp:
        raise Unauthenticated("missing X-SMSMobileAPI-Signature or X-SMSMobileAPI-Timestamp")
    sent_at = check_timestamp(stamp, request.received_at, max_skew, "X-SMSMobileAPI-Timestamp")
    expected = (
        "v1="
        + hmac.new(
            secret.get_secret_value().encode(),
            f"{sent_at}.".encode() + request.body,
            hashlib.sha256,
        ).hexdigest()
    )
    if not hmac.compare_digest(signature.strip().encode(), expected.encode()):
        raise Unauthenticated("bad signature")


def parse_v2(
    gateway: str, secret: SecretStr | None, max_skew: float, request: WebhookRequest
) -> WebhookEvents:
    if secret is None:
        raise NotFound("this gateway has no signed webhook (set webhook_secret)")
    verify_v2(secret, max_skew, request)
    envelope = json_object(request.body)
    event_id = _text(envelope, "id")
    kind = _text(envelope, "type")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise Unprocessable("missing field 'data'")
    if kind == "sms.received":
        sms = InboundSms(
            gateway=gateway,
            provider_id=_text(data, "guid", where="data."),
            sender=phone.sender(data.get("from"), "data.from"),
            text=_text(data, "message", where="data.", allow_empty=True),
            received_at=iso_time(data.get("received_at"))
            or iso_time(envelope.get("occurred_at"))
            or datetime.fromtimestamp(request.received_at, UTC),
            alias=_label(data.get("alias")),
            device=_label(data.get("device_id")),
        )
        return WebhookEvents(inbound=(sms,), event_id=event_id)
    status = _V2_STATUS.get(kind)
    if status is None:
        return WebhookEvents(event_id=event_id, ignored=f"event type {kind!r} is not bridged")
    # The status events' fields are undocumented: the id we got from /sendsms/ is looked for
    # under the names the vendor uses elsewhere.
    provider_id = next(
        (str(data[k]) for k in ("guid", "guid_message", "message_id", "id") if data.get(k)), None
    )
    if provider_id is None:
        raise Unprocessable("missing field 'data.guid'")
    reason = data.get("reason") or data.get("error") or data.get("error_message")
    update = DeliveryUpdate(
        gateway, provider_id, status, kind, str(reason) if reason else None, event_id=event_id
    )
    return WebhookEvents(updates=(update,), event_id=event_id)


# What the vendor posts, for GET /openapi.json (gateway-contracts.md, "SMSMobileAPI").
PLAIN_BODY = obj(
    {"guid": ID, "number": TEXT, "message": TEXT},
    {"date": TEXT, "hour": TEXT, "time_received": DATE},
)
V2_BODY = obj(
    {
        "id": ID,
        "type": {"type": "string", "examples": ["sms.received", *_V2_STATUS]},
        "data": obj(
            {},
            {
                "guid": ID,
                "from": TEXT,
                "message": TEXT,
                "received_at": DATE,
                "alias": TEXT,
                "device_id": ID,
                "reason": TEXT,
            },
        ),
    },
    {"occurred_at": DATE},
)
V2_SECURITY = {
    "smsmobileapiSignature": header_scheme(
        "X-SMSMobileAPI-Signature",
        'v1=hex(HMAC-SHA256(webhook_secret, "<X-SMSMobileAPI-Timestamp>." + raw body))',
    ),
    "smsmobileapiTimestamp": header_scheme(
        "X-SMSMobileAPI-Timestamp", "unix seconds, refused outside max_clock_skew"
    ),
}


def docs(token: SecretStr | None, secret: SecretStr | None) -> tuple[WebhookDoc, ...]:
    """The plain webhook when a token is set, the signed Webhook V2 when a secret is."""
    found = []
    if token is not None:
        body = {"application/json": PLAIN_BODY}
        found.append(WebhookDoc("SMSMobileAPI webhook (received SMS)", token=True, bodies=body))
    if secret is not None:
        body = {"application/json": V2_BODY}
        summary = "SMSMobileAPI Webhook V2 (received SMS, send statuses)"
        found.append(WebhookDoc(summary, security=V2_SECURITY, bodies=body))
    return tuple(found)
