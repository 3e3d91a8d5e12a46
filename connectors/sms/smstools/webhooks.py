"""Smstools payloads in our model: status codes, dates, conversation items and both webhooks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from pydantic import SecretStr

from bridge import phone
from bridge.errors import BadRequest, Forbidden, Unprocessable
from bridge.models import (
    Attachment,
    DeliveryUpdate,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
)
from bridge.models import WebhookRequest as Request
from bridge.openapi import DATE, ID, TEXT, UNIX, obj, one_or_many
from bridge.phone import normalize
from connectors.webhooks import check_url_token

# The documented delivery codes and the strings the conversation/history show for them.
_BY_CODE = {
    "0": ("SUBMITTED", Status.SENT),
    "1": ("DELIVERED", Status.DELIVERED),
    "2": ("NOT DELIVERED", Status.FAILED),
    "3": ("BUFFERED", Status.SENT),
    "4": ("REJECTED", Status.FAILED),
    "5": ("REJECTED", Status.FAILED),
    "9": ("UNKNOWN", Status.SENT),
}
_BY_NAME = {name: status for name, status in _BY_CODE.values()} | {
    # Not in the docs; words a status vocabulary "such as DELIVERED" plausibly has. Mapping them
    # beats the fallback, which would call a still-waiting message sent.
    "PENDING": Status.QUEUED,
    "QUEUED": Status.QUEUED,
    "SCHEDULED": Status.QUEUED,
    "SENT": Status.SENT,
    "UNDELIVERED": Status.FAILED,
    "EXPIRED": Status.FAILED,
    "FAILED": Status.FAILED,
}
_REASONS = {
    "NOT DELIVERED": "not delivered to the handset",
    "REJECTED": "rejected by the operator",
    "UNDELIVERED": "not delivered to the handset",
    "EXPIRED": "expired before delivery",
    "FAILED": "failed",
}
_DETAILS = {"10": "receiver number invalid or unknown", "11": "receiver temporarily out of range"}
# The documented error codes, for answers that carry a code without its text.
CODES = {
    "102": "no message",
    "103": "number missing",
    "104": "invalid credentials",
    "105": "server issues",
    "106": "number invalid",
    "108": "not enough credits",
    "118": "message too long",
    "121": "date invalid or in the past",
    "131": "recipient is on the opt-out list",
    "132": "inbox not found",
    "133": "message not found",
    "135": "limit must be 1..2000",
    "136": "page must be > 0",
    "200": "IP not allowed",
}
_ID_KEYS = ("ID", "id", "messageId", "messageid", "message_id")
_STATUS_KEYS = ("status", "deliveryStatus", "statusCode", "status_code", "code")
_DETAIL_KEYS = ("detail", "detailCode", "statusDetail", "errorCode", "error")
# Seconds of receipt time that share one de-duplication key when a webhook SMS has neither an
# id nor a date (see _inbound); its example.yaml tells users about it.
DEDUPE_BUCKET = 600.0
_YEAR_10000 = 253402300800.0
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d %b %Y, %H:%M:%S")


def map_status(raw: Any, detail: Any = None) -> tuple[Status, str, str | None]:
    """(status, raw status kept for people, reason on failure) for a code or a status string."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        return Status.QUEUED, "", None  # no status yet: still at Smstools
    name, status = _BY_CODE.get(text, (text.upper(), None))
    if status is None:
        # The contract's rule for words we do not know: the gateway acknowledged it, so "sent".
        status = _BY_NAME.get(name.replace("_", " "), Status.SENT)
    detail_text = "" if detail in (None, "", 0, "0") else str(detail).strip()
    raw_status = f"{text} ({name})" if text != name else text
    if detail_text:
        raw_status += f" detail {detail_text}"
    if status is not Status.FAILED:
        return status, raw_status, None
    reason = _REASONS.get(name.replace("_", " "), name.lower())
    if detail_text:
        reason += f": {_DETAILS.get(detail_text, f'detail code {detail_text}')}"
    return status, raw_status, reason


def parse_local(value: Any, zone: tzinfo) -> datetime | None:
    """A vendor date without a zone (``2024-01-01 12:00:00``, ``05 jun 2025, 08:44:46``)."""
    naive = parse_naive(value)
    if naive is None:
        return None
    try:
        return naive.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved past the calendar's end
        return None


def parse_naive(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed
    try:
        return parsed.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # year 1 or 9999 moved past the calendar's end
        return None


def unix(value: Any) -> float | None:
    """Unix seconds, or None for anything no clock shows (a datetime cannot hold it)."""
    if isinstance(value, bool):
        return None
    try:
        stamp = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return stamp if 0 < stamp < _YEAR_10000 else None


def first(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((data[k] for k in keys if data.get(k) not in (None, "")), None)


def vendor_error(body: Any) -> tuple[str | None, str]:
    """(code, words) of ``{"error": "104", "errorMsg": "Invalid credentials"}``, else (None, "")."""
    if not isinstance(body, dict) or body.get("error") in (None, "", 0, "0", False):
        return None, ""
    code = str(body["error"]).strip()[:60]
    words = body.get("errorMsg") or body.get("message") or CODES.get(code) or code
    return code, str(words)[:200]


def item_time(item: dict[str, Any], zone: tzinfo) -> datetime | None:
    stamp = unix(item.get("unixDatetime"))
    if stamp is not None:
        return datetime.fromtimestamp(stamp, UTC)
    return parse_local(item.get("datetime"), zone)


def synthetic_key(*parts: Any) -> str:
    """A stable id for an item the vendor gives none (conversation inbound: ``messageId: null``)."""
    joined = "|".join("" if p is None else str(p) for p in parts)
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:40]


def item_key(item: dict[str, Any]) -> str:
    """The conversation item's ``messageId``, or the synthetic key the contract prescribes."""
    message_id = item.get("messageId")
    if message_id not in (None, ""):
        return str(message_id)
    return synthetic_key(item.get("sender"), item.get("unixDatetime"), item.get("message"))


def attachments(item: dict[str, Any]) -> tuple[Attachment, ...]:
    """``file: [{name, image, mime}]``; the seed's ``mime`` may be a bare ``image/``."""
    files = item.get("file")
    if not isinstance(files, list):
        return ()
    found = []
    for entry in files:
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            continue
        mime = str(entry.get("mime") or "")
        if "/" not in mime or mime.endswith("/"):
            mime = (mime.rstrip("/") or "application") + "/octet-stream"
        name = entry.get("name")
        found.append(Attachment(mime, str(name) if name else None, url=entry["image"]))
    return tuple(found)


# webhooks ----------------------------------------------------------------------------------


def check_token(expected: SecretStr | None, request: Request) -> None:
    """Smstools signs nothing: the secret path segment is the only proof of origin."""
    if expected is None:
        raise Forbidden("this gateway takes no webhooks (set webhook_token)")
    check_url_token(expected, request)


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"malformed JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]  # a one-element array has been seen
    if not items or not all(isinstance(i, dict) for i in items):
        raise BadRequest("malformed JSON: expected an object or a list of objects")
    return items


def _message(item: dict[str, Any], index: int) -> dict[str, Any]:
    message = item.get("message", item)
    if not isinstance(message, dict):
        raise Unprocessable(f"[{index}].message must be an object")
    return message


def _field(message: dict[str, Any], key: str, index: int, *, empty: bool = False) -> str:
    value = message.get(key)
    if value is None:
        raise Unprocessable(f"missing field '[{index}].message.{key}'")
    if not isinstance(value, str | int):
        raise Unprocessable(f"field '[{index}].message.{key}' must be a string")
    if not empty and not str(value).strip():
        raise Unprocessable(f"field '[{index}].message.{key}' is empty")
    return str(value)


def _inbound(
    gateway: str, message: dict[str, Any], index: int, zone: tzinfo, request: Request
) -> InboundSms:
    sender = phone.sender(message.get("sender"), f"[{index}].message.sender")
    text_key = "content" if "content" in message else "message"
    text = _field(message, text_key, index, empty=True)
    receiver = message.get("receiver")
    date = first(message, ("date", "datetime"))
    at = unix(message.get("unixDatetime"))
    received = (
        datetime.fromtimestamp(at, UTC)
        if at
        else parse_local(date, zone) or datetime.fromtimestamp(request.received_at, UTC)
    )
    provider_id = first(message, _ID_KEYS)
    if provider_id is None:
        # No id in the payload: the same text from the same number at another moment is another
        # SMS ("ok", "ok"), so the moment belongs in the key; the vendor's own when it has one.
        # The documented sample has none, and our receipt time changes with every redelivery,
        # so then the moment is the bucket of it: a redelivery within the bucket keeps the key.
        # Accepted limits: the same text from the same number twice in one bucket is shown
        # once, and a redelivery that falls into the next bucket is shown twice.
        moment = at or date or f"bucket:{int(request.received_at // DEDUPE_BUCKET)}"
        provider_id = synthetic_key(sender, receiver, moment, text)
    to = str(receiver).strip() if isinstance(receiver, str | int) else ""
    device = normalize(to) if to else None
    return InboundSms(
        gateway=gateway,
        provider_id=str(provider_id),
        sender=sender,
        text=text,
        received_at=received,
        device=device,
        attachments=attachments(message),
    )


def _report(gateway: str, message: dict[str, Any], index: int) -> DeliveryUpdate:
    # The report's field names are undocumented: look under the names the API uses elsewhere.
    provider_id = first(message, _ID_KEYS)
    if provider_id is None:
        raise Unprocessable(f"missing field '[{index}].message.messageid'")
    raw = first(message, _STATUS_KEYS)
    if raw is None:
        raise Unprocessable(f"missing field '[{index}].message.status'")
    if isinstance(raw, dict | list):
        raise Unprocessable(f"field '[{index}].message.status' must be a string or a code")
    detail = first(message, _DETAIL_KEYS)
    status, raw_status, reason = map_status(raw, detail if isinstance(detail, str | int) else None)
    event_id = synthetic_key("delivery_report", provider_id, raw, detail)
    return DeliveryUpdate(gateway, str(provider_id), status, raw_status, reason, event_id)


def parse_webhook(
    gateway: str, token: SecretStr | None, zone: tzinfo, request: Request
) -> WebhookEvents:
    """``inbox_message`` and ``delivery_report``, alone or batched in an array."""
    check_token(token, request)
    inbound: list[InboundSms] = []
    updates: list[DeliveryUpdate] = []
    skipped: list[str] = []
    for index, item in enumerate(_items(request.body)):
        kind = item.get("webhook_type")
        if kind == "inbox_message":
            inbound.append(_inbound(gateway, _message(item, index), index, zone, request))
        elif kind == "delivery_report":
            updates.append(_report(gateway, _message(item, index), index))
        elif kind is None:
            raise Unprocessable(f"missing field '[{index}].webhook_type'")
        else:
            skipped.append(str(kind)[:40])
    if not inbound and not updates:
        return WebhookEvents(ignored=f"webhook type {', '.join(skipped)!s} is not bridged")
    # Inbound SMS are de-duplicated by id; a report (or a batch of them) by what it says.
    event_id = None
    if updates and not inbound:
        event_id = synthetic_key(*(u.event_id for u in updates))
    return WebhookEvents(inbound=tuple(inbound), updates=tuple(updates), event_id=event_id)


# What Smstools posts, for GET /openapi.json: inbox messages and delivery reports, alone or
# batched; the report's field names are undocumented (see _report).
BODY = one_or_many(
    obj(
        {"webhook_type": {"type": "string", "examples": ["inbox_message", "delivery_report"]}},
        {
            "message": obj(
                {},
                {
                    "sender": TEXT,
                    "receiver": TEXT,
                    "content": TEXT,
                    "date": DATE,
                    "unixDatetime": UNIX,
                    "messageid": ID,
                    "status": ID,
                    "detail": ID,
                },
            )
        },
    )
)
DOCS = (
    WebhookDoc(
        "Smstools webhooks (inbox messages, delivery reports)",
        token=True,
        bodies={"application/json": BODY},
    ),
)
