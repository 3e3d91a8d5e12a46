"""SMSGate for Android webhooks: URL token and signature check, envelope parsing, MMS parts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bridge import phone
from bridge.errors import Forbidden, Unauthenticated, Unprocessable
from bridge.models import (
    Attachment,
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.openapi import DATE, ID, NUMBER, TEXT, header_scheme, obj
from connectors.sms.smsgate.states import PartsCounter
from connectors.webhooks import check_timestamp, iso_time, json_object

# Events we register and bridge; the others are valid but answered "ignored".
INBOUND_EVENTS = ("sms:received", "mms:downloaded")
STATUS_EVENTS = ("sms:sent", "sms:delivered", "sms:failed")


def inbound_key(message_id: str, received_at: datetime, sender: str) -> str:
    """Our dedupe key for an inbound message.

    The vendor's ``messageId`` of inbound SMS is content-based (two "ok" from one person share
    it), so the receipt instant and the sender make it unique, as the contract advises.
    """
    key = f"{message_id}@{int(received_at.timestamp() * 1000)}/{sender}"
    return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()


def verify(
    request: WebhookRequest,
    *,
    signing_key: SecretStr | None,
    token: SecretStr | None,
    max_skew: float,
) -> None:
    """URL token (when configured) and ``X-Signature`` (when a signing key is configured)."""
    # The token is optional here (the signature is the real check), so a missing one counts
    # as a wrong one rather than as no credentials at all.
    if token is not None or request.token is not None:
        expected = token.get_secret_value().encode() if token is not None else b""
        if token is None or not hmac.compare_digest((request.token or "").encode(), expected):
            raise Forbidden("unknown webhook token")
    if signing_key is None:
        return
    signature = request.headers.get("x-signature")
    stamp = request.headers.get("x-timestamp")
    if not signature or not stamp:
        raise Unauthenticated("missing X-Signature or X-Timestamp")
    check_timestamp(stamp, request.received_at, max_skew, "X-Timestamp")
    # The app signs the raw body followed by the timestamp's decimal digits, hex-encoded.
    mac = hmac.new(
        signing_key.get_secret_value().encode(), request.body + stamp.encode(), hashlib.sha256
    )
    if not hmac.compare_digest(signature.strip().lower().encode(), mac.hexdigest().encode()):
        raise Unauthenticated("bad signature")


def _field(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if value is None:
        raise Unprocessable(f"missing field '{key}'")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise Unprocessable(f"field '{key}' must be a string")
    text = str(value)
    if not allow_empty and not text.strip():
        raise Unprocessable(f"field '{key}' is empty")
    return text


def _payload(envelope: dict[str, Any]) -> dict[str, Any]:
    payload = envelope.get("payload")
    if not isinstance(payload, dict):
        raise Unprocessable("missing field 'payload'")
    return payload


def _optional_int(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdecimal():
        raise Unprocessable(f"field 'payload.{key}' must be a whole number")
    return int(value)


@dataclass(frozen=True)
class WebhookParser:
    """Turns one verified SMSGate webhook into our events."""

    gateway: str
    id_prefix: str  # only status events for ids we made are ours
    region: str | None  # for national numbers
    media_url: Callable[[str, int], str | None]  # (message id, part id) -> fetchable URL
    parts: PartsCounter

    def parse(self, request: WebhookRequest) -> WebhookEvents:
        envelope = json_object(request.body)
        event_id = _field(envelope, "id")
        event = _field(envelope, "event")
        if event in INBOUND_EVENTS:
            sms = self._inbound(event, envelope, request.received_at)
            return WebhookEvents(inbound=(sms,), event_id=event_id)
        if event in (*STATUS_EVENTS, "sms:cancelled"):
            return self._status(event, event_id, _payload(envelope))
        return WebhookEvents(event_id=event_id, ignored=f"event {event!r} is not bridged")

    def _inbound(self, event: str, envelope: dict[str, Any], arrived: float) -> InboundSms:
        payload = _payload(envelope)
        key = "sender" if payload.get("sender") else "phoneNumber"
        sender = phone.sender(payload.get(key), f"payload.{key}", self.region)
        received = iso_time(payload.get("receivedAt"))
        if payload.get("receivedAt") is not None and received is None:
            raise Unprocessable("field 'payload.receivedAt' is not a date-time")
        received = received or datetime.fromtimestamp(arrived, UTC)
        if event == "sms:received":
            text = _field(payload, "message", allow_empty=True)
            attachments: tuple[Attachment, ...] = ()
        else:
            text, attachments = self._mms(payload)
        message_id = str(payload.get("messageId") or hashlib.sha256(text.encode()).hexdigest()[:16])
        device = envelope.get("deviceId")
        return InboundSms(
            gateway=self.gateway,
            provider_id=inbound_key(message_id, received, sender),
            sender=sender,
            text=text,
            received_at=received,
            device=str(device) if device else None,
            sim=_optional_int(payload, "simNumber"),
            attachments=attachments,
        )

    def _mms(self, payload: dict[str, Any]) -> tuple[str, tuple[Attachment, ...]]:
        raw = payload.get("attachments")
        if not isinstance(raw, list):
            raise Unprocessable("missing field 'payload.attachments'")
        body = payload.get("body") or ""
        subject = payload.get("subject") or ""
        text = "\n".join(str(part) for part in (subject, body) if part)
        files: list[Attachment] = []
        missing: list[str] = []
        for item in raw:
            if not isinstance(item, dict):
                raise Unprocessable("field 'payload.attachments' must hold objects")
            content_type = _field(item, "contentType")
            name = str(item["name"]) if item.get("name") else None
            data = item.get("data")
            if data is not None:
                if not isinstance(data, str):
                    raise Unprocessable("field 'payload.attachments[].data' must be base64")
                try:
                    content = base64.b64decode(data, validate=True)
                except (binascii.Error, ValueError):
                    raise Unprocessable(
                        "field 'payload.attachments[].data' is not base64"
                    ) from None
                files.append(Attachment(content_type, name, data=content))
                continue
            part = _optional_int(item, "partId")
            url = self.media_url(str(payload.get("messageId") or ""), part or 0)
            if url is not None and part is not None and payload.get("messageId"):
                files.append(Attachment(content_type, name, url=url))
            else:
                missing.append(name or content_type)
        if missing:
            # Cloud mode cannot fetch what the phone did not inline: say so instead of losing it.
            note = f"[attachment not available: {', '.join(missing)}]"
            text = f"{text}\n{note}" if text else note
        return text, tuple(files)

    def _status(self, event: str, event_id: str, payload: dict[str, Any]) -> WebhookEvents:
        message_id = _field(payload, "messageId")
        if not message_id.startswith(self.id_prefix):
            return WebhookEvents(event_id=event_id, ignored="message not sent by this bridge")
        total = _optional_int(payload, "partsCount")
        reason: str | None = None
        if event == "sms:sent":
            self.parts.sent(message_id, total)
            status, raw = Status.SENT, event
        elif event == "sms:delivered":
            done, total = self.parts.delivered(message_id, event_id, total)
            if total is not None and done >= total:
                status, raw = Status.DELIVERED, event
            else:
                # A part reached the handset, so the message was sent; "delivered" waits for all.
                of = str(total) if total is not None else "?"
                status, raw = Status.SENT, f"{event} ({done}/{of} parts)"
        elif event == "sms:failed":
            status, raw = Status.FAILED, event
            reason = str(payload.get("reason") or "the phone reported a failure")[:200]
        else:
            status, raw, reason = Status.FAILED, event, "cancelled"
        update = DeliveryUpdate(self.gateway, message_id, status, raw, reason, event_id=event_id)
        return WebhookEvents(updates=(update,), event_id=event_id)


# What the app posts, for GET /openapi.json (gateway-contracts.md, "SMSGate").
PAYLOAD = obj(
    {},
    {
        "messageId": TEXT,
        "phoneNumber": TEXT,
        "sender": TEXT,
        "message": TEXT,
        "receivedAt": DATE,
        "simNumber": NUMBER,
        "partsCount": NUMBER,
        "reason": TEXT,
        "subject": TEXT,
        "body": TEXT,
        "attachments": {
            "type": "array",
            "items": obj({"contentType": TEXT}, {"name": TEXT, "partId": NUMBER, "data": TEXT}),
        },
    },
)
BODY = obj(
    {
        "id": ID,
        "event": {"type": "string", "examples": [*INBOUND_EVENTS, *STATUS_EVENTS]},
    },
    {"deviceId": TEXT, "webhookId": TEXT, "payload": PAYLOAD},
)
SECURITY = {
    "smsgateSignature": header_scheme(
        "X-Signature", "hex(HMAC-SHA256(signing_key, raw body + X-Timestamp))"
    ),
    "smsgateTimestamp": header_scheme(
        "X-Timestamp", "unix seconds, refused outside max_clock_skew"
    ),
}


def docs(token: SecretStr | None, signing_key: SecretStr | None) -> tuple[WebhookDoc, ...]:
    """Under the URL token when one is set; signed when a signing key is."""
    return (
        WebhookDoc(
            "SMSGate webhooks (received SMS and MMS, send statuses)",
            token=token is not None,
            security=SECURITY if signing_key is not None else {},
            bodies={"application/json": BODY},
        ),
    )
