"""Smstools webhooks (inbox messages, delivery reports): the URL token, parsing, their schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from pydantic import SecretStr

from bridge import phone
from bridge.errors import BadRequest, Forbidden, Unprocessable
from bridge.models import DeliveryUpdate, InboundSms, WebhookDoc, WebhookEvents
from bridge.models import WebhookRequest as Request
from bridge.openapi import DATE, ID, TEXT, UNIX, obj, one_or_many
from bridge.phone import normalize
from connectors.sms.smstools.payloads import (
    attachments,
    first,
    map_status,
    parse_local,
    synthetic_key,
    unix,
)
from connectors.webhooks import check_url_token

# The report's field names are undocumented: these are the names the API uses elsewhere.
_ID_KEYS = ("ID", "id", "messageId", "messageid", "message_id")
_STATUS_KEYS = ("status", "deliveryStatus", "statusCode", "status_code", "code")
_DETAIL_KEYS = ("detail", "detailCode", "statusDetail", "errorCode", "error")
# Seconds of receipt time that share one de-duplication key when a webhook SMS has neither an
# id nor a date (see _inbound); its example.yaml tells users about it.
DEDUPE_BUCKET = 600.0


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
