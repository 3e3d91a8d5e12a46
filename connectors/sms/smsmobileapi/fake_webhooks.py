"""Webhook delivery for the SMSMobileAPI fake: legacy unsigned JSON and signed Webhook V2."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from bridge.testing.fake_base import LoopbackFake, RecordT

if TYPE_CHECKING:  # the fake imports this module, so only type-check the reverse edge
    from connectors.sms.smsmobileapi.fake import ReceivedSms, SentSms

API_VERSION = "2026-09-22"
SIGNATURE_PREFIX = "v1="


def iso_z(ts: float) -> str:
    """Unix seconds -> ``2026-09-23T12:00:00Z`` (the vendor's UTC format)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sql_datetime(ts: float) -> str:
    """Unix seconds -> ``2026-09-23 12:00:00`` (UTC; the vendor's server zone is unknown)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``"{timestamp}." + raw body``, as the vendor documents."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def plain_payload(
    *, now: float, received_at: float, message: str, number: str, guid: str
) -> dict[str, str]:
    """Legacy webhook body; ``date``/``hour`` are when the server added the row (not receipt)."""
    added = datetime.fromtimestamp(now, UTC)
    return {
        "date": added.strftime("%Y-%m-%d"),
        "hour": added.strftime("%H:%M:%S"),
        "time_received": sql_datetime(received_at),
        "message": message,
        "number": number,
        "guid": guid,
    }


def v2_envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    now: float,
    event_id: str | None = None,
    occurred_at: str | None = None,
) -> dict[str, Any]:
    """Webhook V2 envelope; the spec marks it ``additionalProperties: false``, so nothing extra."""
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": event_type,
        "api_version": API_VERSION,
        "created_at": iso_z(now),
        "occurred_at": occurred_at or iso_z(now),
        "data": data,
    }


def v2_headers(
    *, event_type: str, event_id: str, timestamp: int, secret: str, body: bytes
) -> dict[str, str]:
    """The five documented headers; ``Idempotency-Key`` repeats the event id, as in the examples."""
    return {
        "Content-Type": "application/json",
        "X-SMSMobileAPI-Event": event_type,
        "X-SMSMobileAPI-Event-ID": event_id,
        "X-SMSMobileAPI-Timestamp": str(timestamp),
        "X-SMSMobileAPI-Signature": sign(secret, timestamp, body),
        "Idempotency-Key": event_id,
    }


def encode(payload: Any) -> bytes:
    # Compact and ASCII-escaped like PHP's json_encode: receivers must verify the raw bytes,
    # never a re-serialisation, and this keeps a naive re-dump from matching by accident.
    return json.dumps(payload, separators=(",", ":")).encode()


def received_data(
    *, guid: str, number: str, message: str, received_at: float, alias: str | None, device: str
) -> dict[str, Any]:
    """``sms.received`` data, field for field as the vendor's fixture ``sms.received.json``."""
    return {
        "guid": guid,
        "from": number,
        "message": message,
        "received_at": iso_z(received_at),
        "alias": alias,
        "device_id": device,
    }


def status_data(
    event_type: str,
    *,
    guid: str,
    to: str | None,
    message: str | None,
    now: float,
    reason: str | None,
) -> dict[str, Any]:
    """``sms.sent`` / ``sms.failed`` data.

    The vendor documents no fields for these events. This is OUR ASSUMPTION, modelled on
    ``sms.received``: ``guid`` is the ``result.id`` returned by /sendsms/, plus ``to``, ``message``
    and ``sent_at`` or ``failed_at`` + ``reason``. Connectors must tolerate missing fields.
    """
    data: dict[str, Any] = {"guid": guid, "to": to, "message": message}
    if event_type == "sms.sent":
        data["sent_at"] = iso_z(now)
    elif event_type == "sms.failed":
        data["failed_at"] = iso_z(now)
        data["reason"] = reason
    elif event_type == "sms.api.submitted":
        data["submitted_at"] = iso_z(now)
    else:
        raise ValueError(f"not an SMS status event: {event_type!r}")
    return data


class WebhookDeliveryMixin(LoopbackFake[RecordT]):
    """The gateway -> bridge half of :class:`FakeSmsMobileApi` (the base's shared client)."""

    webhook_secret: str
    sent: list[SentSms]

    async def deliver_plain_webhook(self, url: str, sms: ReceivedSms) -> httpx.Response:
        payload = plain_payload(
            now=time.time(),
            received_at=sms.timestamp_unix,
            message=sms.message,
            number=sms.number,
            guid=sms.guid,
        )
        return await self.post_json(url, encode(payload))

    async def deliver_v2(
        self,
        url: str,
        event_type: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        body: bytes | None = None,
        occurred_at: str | None = None,
    ) -> httpx.Response:
        """POST a signed envelope; ``secret``/``body``/``timestamp`` override to test rejection."""
        now = time.time()
        envelope = v2_envelope(
            event_type, data, now=now, event_id=event_id, occurred_at=occurred_at
        )
        raw = encode(envelope) if body is None else body
        headers = v2_headers(
            event_type=event_type,
            event_id=envelope["id"],
            timestamp=int(now) if timestamp is None else timestamp,
            secret=self.webhook_secret if secret is None else secret,
            body=raw,
        )
        return await self.post_json(url, raw, headers)

    async def deliver_received_v2(self, url: str, sms: ReceivedSms, **kw: Any) -> httpx.Response:
        data = received_data(
            guid=sms.guid,
            number=sms.number,
            message=sms.message,
            received_at=sms.timestamp_unix,
            alias=sms.alias,
            device=sms.device,
        )
        kw.setdefault("occurred_at", iso_z(sms.timestamp_unix))
        return await self.deliver_v2(url, "sms.received", data, **kw)

    async def deliver_status_v2(
        self, url: str, guid: str, event_type: str, *, reason: str | None = None, **kw: Any
    ) -> httpx.Response:
        # Unknown guids are allowed on purpose: bridges must cope with events for messages they
        # never sent (another client on the same account, or state lost in a restart).
        sms = next((s for s in self.sent if s.guid == guid), None)
        to, message = (sms.recipients, sms.message) if sms else (None, None)
        data = status_data(
            event_type, guid=guid, to=to, message=message, now=time.time(), reason=reason
        )
        if sms is not None and event_type in ("sms.sent", "sms.failed"):
            # Keep the polled /log/sent/sms/ telling the same story as the webhook.
            failed = event_type == "sms.failed"
            sms.status, sms.error = ("Error", reason) if failed else ("Success", None)
        return await self.deliver_v2(url, event_type, data, **kw)
