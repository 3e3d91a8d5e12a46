"""SmsGateway24 vocabulary (status codes, dates) and its two device webhooks (SMS in, statuses)."""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr

from bridge import phone
from bridge.errors import NotFound, Unprocessable
from bridge.models import (
    Attachment,
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.openapi import DATE, ID, NUMBER, TEXT, obj
from connectors.webhooks import check_url_token, json_object

INCOMING = 5  # the status code of a received SMS in the vendor's one table of messages

# Codes of getsmsstatus / getallsms / the status webhook. 3 ("queued on the phone") comes
# between 1 and 2 in time, but all three mean "not handed to the network yet".
_STATUS: dict[int, Status] = {
    1: Status.QUEUED,
    2: Status.QUEUED,
    3: Status.QUEUED,
    6: Status.SENT,
    7: Status.DELIVERED,
    8: Status.FAILED,
    9: Status.FAILED,
    10: Status.FAILED,
    11: Status.FAILED,
    12: Status.FAILED,
    100: Status.FAILED,
    101: Status.FAILED,
}

# Shown in the chat thread when an SMS fails, so they say what a person can do about it.
_REASONS: dict[int, str] = {
    8: "not delivered to the recipient's phone",
    9: "the phone could not send it (generic failure)",
    10: "the phone could not send it: no mobile service",
    11: "the phone could not send it: null PDU",
    12: "the phone could not send it: its radio is off",
    100: "the SmsGateway24 app on the phone is not allowed to send SMS",
    101: "the SmsGateway24 app on the phone is not allowed to send SMS",
}


def map_status(code: int, description: str | None = None) -> tuple[Status, str | None] | None:
    """Our status and the failure reason for a vendor code; ``None`` for an incoming SMS.

    Unknown codes count as queued: the vendor acknowledged the SMS and we never guess further.
    """
    if code == INCOMING:
        return None
    status = _STATUS.get(code, Status.QUEUED)
    if status is not Status.FAILED:
        return status, None
    reason = _REASONS.get(code) or (description or f"failed with status {code}")
    return status, reason


def as_int(value: Any) -> int | None:
    """The vendor's ids and codes arrive as numbers or numeric strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def neutral_sim(slot: Any) -> int | None:
    """The vendor's SIM slot (0 or 1) as SIM 1 or 2, the way people and our config count."""
    value = as_int(slot)
    return value + 1 if value in (0, 1) else None


def vendor_time(value: Any) -> datetime | None:
    """A PHP DateTime as the API serialises it: ``{date, timezone_type, timezone}``.

    Type 1 is an offset (``+02:00``), type 3 a zone name (``Europe/Paris``), type 2 an
    abbreviation, of which only UTC/GMT/Z are understood.
    """
    if not isinstance(value, dict) or not isinstance(value.get("date"), str):
        return None
    try:
        naive = datetime.fromisoformat(value["date"].strip())
    except ValueError:
        return None
    zone = str(value.get("timezone") or "UTC").strip()
    tz: timezone | ZoneInfo | None = None
    if zone.upper() in ("UTC", "GMT", "Z"):
        tz = UTC
    elif zone[:1] in "+-":
        try:
            hours, _, minutes = zone[1:].partition(":")
            delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
            tz = timezone(delta if zone[0] == "+" else -delta)  # within a day, or ValueError
        except (ValueError, OverflowError):
            return None
    else:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    try:
        return naive.replace(tzinfo=tz).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved past the calendar's end
        return None


def _id(data: dict[str, Any], key: str) -> int:
    if data.get(key) is None:
        raise Unprocessable(f"missing field '{key}'")
    value = as_int(data[key])
    if value is None:
        raise Unprocessable(f"field '{key}' must be a number")
    return value


def _attachment(data: dict[str, Any]) -> tuple[Attachment, ...]:
    """WhatsApp images arrive as ``type: img`` with a public S3 ``img_url`` and an empty body."""
    url = data.get("img_url")
    if data.get("type") != "img" or not isinstance(url, str) or not url.strip():
        return ()
    name = urlsplit(url).path.rsplit("/", 1)[-1] or None
    guessed = mimetypes.guess_type(name or "")[0]
    content_type = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
    return (Attachment(content_type=content_type, name=name, url=url.strip()),)


def _incoming(gateway: str, data: dict[str, Any], request: WebhookRequest) -> InboundSms:
    sms_id = _id(data, "sms_id")
    sender = phone.sender(data.get("address"), "address")
    body = data.get("body")
    if body is not None and not isinstance(body, str):
        raise Unprocessable("field 'body' must be a string")
    device = as_int(data.get("device_id"))
    return InboundSms(
        gateway=gateway,
        provider_id=str(sms_id),
        sender=sender,
        text=body or "",
        # The webhook's date strings carry no zone (undocumented); it calls at once, so the
        # moment it reached us is the better clock.
        received_at=datetime.fromtimestamp(request.received_at, UTC),
        device=str(device) if device is not None else None,
        # Only the older payload's ``sim`` is the API's slot; what the newer ``channel_id``
        # counts is undocumented, and a wrong guess would answer from the other SIM.
        sim=neutral_sim(data.get("sim")),
        attachments=_attachment(data),
    )


def _status(gateway: str, data: dict[str, Any]) -> WebhookEvents:
    sms_id = _id(data, "sms_id")
    code = _id(data, "status_id")
    event_id = f"status:{sms_id}:{code}"
    description = data.get("status_message")
    mapped = map_status(code, str(description) if description else None)
    if mapped is None:
        return WebhookEvents(event_id=event_id, ignored="status 5 is an incoming SMS, not a status")
    status, reason = mapped
    update = DeliveryUpdate(gateway, str(sms_id), status, str(code), reason, event_id=event_id)
    return WebhookEvents(updates=(update,), event_id=event_id)


def parse(
    gateway: str, token: SecretStr | None, devices: frozenset[str], request: WebhookRequest
) -> WebhookEvents:
    """Either device webhook, told apart by ``status_id``; a URL token authenticates both,
    since the vendor signs nothing."""
    if token is None:
        raise NotFound("this gateway takes no webhooks (set webhook_token)")
    check_url_token(token, request)
    data = json_object(request.body)
    device = as_int(data.get("device_id"))
    if device is not None and str(device) not in devices:
        return WebhookEvents(ignored=f"device {device} is not one of this gateway's devices")
    if "status_id" in data:
        return _status(gateway, data)
    # No envelope id: the core already de-duplicates inbound SMS by (gateway, sms_id).
    return WebhookEvents(inbound=(_incoming(gateway, data, request),))


# What a device posts, for GET /openapi.json: both webhooks, told apart by ``status_id``.
BODY = obj(
    {"sms_id": ID},
    {
        "address": TEXT,
        "body": TEXT,
        "device_id": ID,
        "sim": NUMBER,
        "type": TEXT,
        "img_url": TEXT,
        "status_id": ID,
        "status_message": TEXT,
        "date": DATE,
    },
)
DOCS = (
    WebhookDoc(
        "SmsGateway24 device webhooks (received SMS, send statuses)",
        token=True,
        bodies={"application/json": BODY},
    ),
)
