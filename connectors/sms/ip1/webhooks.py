"""iP1 payloads in our model: status codes, delivery reports, incoming SMS, message resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bridge import phone
from bridge.errors import BadRequest, Unprocessable
from bridge.models import (
    DeliveryUpdate,
    HistoryItem,
    InboundSms,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.openapi import DATE, ID, NUMBER, TEXT, obj, one_or_many
from connectors.webhooks import check_url_token, iso_time

# Names from iP1's status code page; codes the seed lists without a name (404, 408, 409, 5xx)
# are described by their group.
NAMES = {
    101: "Accepted",
    102: "Queued",
    103: "Funded",
    104: "Refunded",
    110: "Sending",
    111: "DeliveredToGateway",
    112: "DeliveredToCarrier",
    113: "DeliveredToGSM",
    114: "QueuedAtGateway",
    201: "DeliveredToHandset",
    202: "Expired",
    203: "Canceled",
    402: "InsufficientFunds",
    403: "SenderRejected",
    405: "RecipientRejected",
    406: "GenericRejected",
    407: "InvalidSender",
}
_REASONS = {
    104: "refunded by iP1: the message was not delivered",
    202: "expired before it reached the phone",
    203: "canceled",
    402: "insufficient funds on the iP1 account",
    403: "iP1 rejected the sender",
    405: "iP1 rejected the recipient number",
    406: "rejected by iP1",
    407: "invalid sender",
}
_SENT = frozenset({111, 112, 113, 114})  # handed on towards the carrier: no receipt yet


def status_of(code: int) -> Status:
    """iP1 groups its codes by the hundreds digit: 1 info, 2 final, 4 rejection, 5 error."""
    if code == 201:
        return Status.DELIVERED
    if code in _SENT:
        return Status.SENT
    group = code // 100
    if code == 104 or code in (202, 203) or group in (4, 5):
        # 104 Refunded only follows a failure; 202/203 are "final" for iP1 but not delivered.
        return Status.FAILED
    if group == 1:
        return Status.QUEUED
    # An unknown final code: iP1 took the message, but a receipt is never guessed.
    return Status.SENT


def describe(code: int) -> str:
    """``405 RecipientRejected`` or ``511`` for the raw status kept next to ours."""
    name = NAMES.get(code)
    return f"{code} {name}" if name else str(code)


def reason_of(code: int) -> str | None:
    """What a person reads in the chat when the SMS failed; None when it did not."""
    if status_of(code) is not Status.FAILED:
        return None
    if code in _REASONS:
        return f"{_REASONS[code]} (iP1 status {code})"
    if code // 100 == 4:
        return f"rejected by iP1 (status {code})"
    return f"undeliverable (iP1 status {code})"


def code_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    return None


def latest_status(row: dict[str, Any]) -> int | None:
    """The newest code of a message resource's ``statuses`` (by ``created``, then by order)."""
    statuses = [s for s in row.get("statuses") or [] if isinstance(s, dict)]
    known = [(s, code_of(s.get("code"))) for s in statuses]
    ranked = [
        (iso_time(s.get("created")) or datetime.min.replace(tzinfo=UTC), index, code)
        for index, (s, code) in enumerate(known)
        if code is not None
    ]
    return max(ranked)[2] if ranked else None


def rows(body: Any) -> list[dict[str, Any]]:
    """The message objects of a list answer (a bare array; a paging wrapper is tolerated)."""
    if isinstance(body, dict):
        for key in ("items", "data", "messages", "value", "results"):
            if isinstance(body.get(key), list):
                body = body[key]
                break
    if not isinstance(body, list):
        return []
    return [row for row in body if isinstance(row, dict)]


def history_item(row: dict[str, Any], participant: str) -> HistoryItem:
    """One conversation line; the direction is read from who sent it, then from ``direction``."""
    sender, recipient = str(row.get("sender") or ""), str(row.get("recipient") or "")
    if sender == participant and recipient != participant:
        outgoing = False
    elif recipient == participant and sender != participant:
        outgoing = True
    else:
        # The seed's numeric encoding is not explained; 0 = MT and 1 = MO is the contract's
        # reading, used only when the numbers do not say it already.
        outgoing = str(row.get("direction", "")).strip().lower() in ("mt", "0")
    at = iso_time(row.get("modified"))
    statuses = [s for s in row.get("statuses") or [] if isinstance(s, dict)]
    if statuses:
        at = iso_time(statuses[0].get("created")) or at
    return HistoryItem(
        outgoing=outgoing,
        text=str(row.get("body") or ""),
        at=at,
        provider_id=str(row["id"]) if row.get("id") else None,
    )


# webhooks ----------------------------------------------------------------------------------


def check_token(expected: SecretStr, request: WebhookRequest) -> None:
    """iP1 signs nothing: the secret path segment is the only credential."""
    check_url_token(expected, request)


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"malformed JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise BadRequest("malformed JSON: expected an object or a list of objects")
    return items


def _text(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if value is None:
        raise Unprocessable(f"missing field '{key}'")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable(f"field '{key}' must be a string")
    text = str(value)
    if not allow_empty and not text.strip():
        raise Unprocessable(f"field '{key}' is empty")
    return text


def _report(gateway: str, item: dict[str, Any]) -> DeliveryUpdate:
    batch = _text(item, "batchId")
    # One version of iP1's page names the message id ``id``, the other ``messageId``.
    message = item.get("messageId") or item.get("id") or ""
    code = code_of(item.get("code"))
    if code is None:
        raise Unprocessable("field 'code' must be an iP1 status code")
    return DeliveryUpdate(
        gateway=gateway,
        provider_id=batch,
        status=status_of(code),
        raw_status=describe(code),
        reason=reason_of(code),
        event_id=f"dlr:{batch}:{message}:{code}",
    )


def _inbound(gateway: str, item: dict[str, Any], received_at: float) -> InboundSms:
    listed = item.get("statuses")
    statuses = [s for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []
    at = (
        (iso_time(statuses[0].get("created")) if statuses else None)
        or iso_time(item.get("modified"))
        or datetime.fromtimestamp(received_at, UTC)
    )
    recipient = item.get("recipient")
    return InboundSms(
        gateway=gateway,
        provider_id=_text(item, "id"),
        sender=phone.sender(item.get("sender"), "sender"),
        text=_text(item, "body", allow_empty=True),
        received_at=at,
        # The number the customer wrote to: the reply goes out from it (see Ip1.send).
        device=str(recipient) if isinstance(recipient, str | int) and str(recipient) else None,
    )


def parse(gateway: str, token: SecretStr, request: WebhookRequest) -> WebhookEvents:
    """An incoming SMS ("mo" message) or a delivery report, told apart by their fields."""
    check_token(token, request)
    if request.method != "POST":
        raise BadRequest("iP1 calls back with POST")
    inbound: list[InboundSms] = []
    updates: list[DeliveryUpdate] = []
    outgoing = 0
    for item in _items(request.body):
        direction = str(item.get("direction", "")).strip().lower()
        if "code" in item and "body" not in item:
            updates.append(_report(gateway, item))
        elif direction in ("mo", "1") or (not direction and "body" in item):
            inbound.append(_inbound(gateway, item, request.received_at))
        elif direction in ("mt", "0"):
            outgoing += 1
        else:
            raise Unprocessable("neither an incoming SMS nor a delivery report")
    if not inbound and not updates:
        reason = "an outgoing message, not an incoming one" if outgoing else "no events"
        return WebhookEvents(ignored=reason)
    event_id = updates[0].event_id if len(updates) == 1 and not inbound else None
    return WebhookEvents(inbound=tuple(inbound), updates=tuple(updates), event_id=event_id)


# What iP1 posts, for GET /openapi.json: incoming messages and delivery reports, alone or batched.
BODY = one_or_many(
    obj(
        {},
        {
            "id": ID,
            "direction": {"type": ["string", "integer"], "examples": ["mo", "mt"]},
            "sender": TEXT,
            "recipient": TEXT,
            "body": TEXT,
            "modified": DATE,
            "statuses": {"type": "array", "items": obj({}, {"code": ID, "created": DATE})},
            "batchId": ID,
            "messageId": ID,
            "code": NUMBER,
        },
    )
)
DOCS = (
    WebhookDoc(
        "iP1 callbacks (incoming SMS, delivery reports)",
        token=True,
        bodies={"application/json": BODY},
        # iP1 retries anything but 200 OK.
        answer={"application/json": obj({"status": {"const": "ok"}})},
    ),
)
