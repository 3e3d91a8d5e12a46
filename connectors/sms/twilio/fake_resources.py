"""The fake Twilio account's data and its JSON: message and media resources, lists, errors."""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_BODY = 1600
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class FakeMedia:
    sid: str
    content_type: str
    data: bytes


@dataclass
class FakeMessage:
    """A message resource of the fake account."""

    sid: str
    to: str
    from_: str
    body: str
    direction: str  # "inbound" | "outbound-api"
    status: str
    date_created: float
    date_sent: float | None = None
    date_updated: float = 0.0
    error_code: int | None = None
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    media: list[FakeMedia] = field(default_factory=list)
    media_urls: list[str] = field(default_factory=list)  # MediaUrl of an outbound MMS


def new_sid(prefix: str) -> str:
    """``SM``/``MM``/``ME`` + 32 hex digits, the shape of Twilio's sids."""
    return prefix + secrets.token_hex(16)


def rfc2822(ts: float | None) -> str | None:
    """Twilio's resource date format: ``Thu, 30 Jul 2015 20:12:31 +0000``."""
    if ts is None:
        return None
    return format_datetime(datetime.fromtimestamp(int(ts), UTC)).replace("-0000", "+0000")


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    """Twilio's documented error shape."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def account_resource(account: str, status: str) -> dict[str, Any]:
    """``GET /Accounts/{Sid}.json``: the Account resource's documented fields."""
    return {
        "sid": account,
        "owner_account_sid": account,
        "friendly_name": "smsbridge fake",
        "status": status,
        "type": "Full",
        "date_created": rfc2822(0),
        "date_updated": rfc2822(0),
        "uri": f"/{API_VERSION}/Accounts/{account}.json",
        "subresource_uris": {"messages": f"/{API_VERSION}/Accounts/{account}/Messages.json"},
    }


def message_resource(account: str, m: FakeMessage) -> dict[str, Any]:
    """``GET Messages/{Sid}.json``, field for field as the message-resource page shows it."""
    uri = f"/{API_VERSION}/Accounts/{account}/Messages/{m.sid}"
    return {
        "account_sid": account,
        "api_version": API_VERSION,
        "body": m.body,
        "date_created": rfc2822(m.date_created),
        "date_sent": rfc2822(m.date_sent),
        "date_updated": rfc2822(m.date_updated),
        "direction": m.direction,
        "error_code": m.error_code,
        "error_message": None,  # Twilio leaves it null and documents the code instead
        "from": m.from_,
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": str(len(m.media) or len(m.media_urls)),
        "num_segments": str(max(1, -(-len(m.body) // 153))),
        "price": None,
        "price_unit": "USD",
        "sid": m.sid,
        "status": m.status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": m.to,
        "uri": f"{uri}.json",
    }


def media_resource(account: str, m: FakeMessage, media: FakeMedia) -> dict[str, Any]:
    return {
        "account_sid": account,
        "content_type": media.content_type,
        "date_created": rfc2822(m.date_created),
        "date_updated": rfc2822(m.date_updated),
        "parent_sid": m.sid,
        "sid": media.sid,
        "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{m.sid}/Media/{media.sid}.json",
    }


def page(
    key: str, rows: list[dict[str, Any]], params: dict[str, str], path: str, max_size: int
) -> dict[str, Any]:
    """One page of a list resource, with the paging URIs Twilio adds around ``key``."""
    size = min(max(_int(params.get("PageSize"), DEFAULT_PAGE_SIZE), 1), max_size)
    number = max(_int(params.get("Page"), 0), 0)
    chunk = rows[number * size : (number + 1) * size]
    filters = {k: v for k, v in params.items() if k not in ("Page", "PageSize", "PageToken")}

    def uri(index: int) -> str:
        query = {**filters, "PageSize": str(size), "Page": str(index)}
        if index:
            query["PageToken"] = f"PA{rows[index * size - 1]['sid']}"
        return f"{path}?{urlencode(query)}"

    more = (number + 1) * size < len(rows)
    return {
        key: chunk,
        "end": number * size + max(len(chunk) - 1, 0),
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1) if more else None,
        "page": number,
        "page_size": size,
        "previous_page_uri": uri(number - 1) if number else None,
        "start": number * size,
        "uri": uri(number),
    }


def newest_first(messages: list[FakeMessage]) -> list[FakeMessage]:
    # Twilio lists by date sent, newest first; messages not sent yet count as newest.
    return sorted(
        messages, key=lambda m: (m.date_sent or float("inf"), m.date_created), reverse=True
    )


def matches(m: FakeMessage, p: dict[str, str]) -> bool:
    """The list filters ``To``, ``From`` and ``DateSent`` / ``DateSent>`` / ``DateSent<``."""
    if p.get("To") and m.to != p["To"]:
        return False
    if p.get("From") and m.from_ != p["From"]:
        return False
    for key, op in (("DateSent", "="), ("DateSent>", ">="), ("DateSent<", "<=")):
        if not p.get(key):
            continue
        bound = _day_or_time(p[key])
        # OUR READING of the docs: a message Twilio has not sent yet has no date_sent, so no
        # DateSent filter matches it (clients must not rely on it to find queued messages).
        if bound is None or m.date_sent is None:
            return False
        by_day, stamp = bound
        sent = float(m.date_sent)
        if by_day:
            sent = _day_start(sent)
        ok = {"=": sent == stamp, ">=": sent >= stamp, "<=": sent <= stamp}[op]
        if not ok:
            return False
    return True


def _day_start(ts: float) -> float:
    day = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


def _day_or_time(value: str) -> tuple[bool, float] | None:
    """A GMT day ``YYYY-MM-DD`` (documented) or an ISO 8601 time (what Twilio's SDKs send)."""
    try:
        if len(value) == 10:
            return True, datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return False, (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def refusal(
    p: dict[str, str],
    media_urls: list[str],
    numbers: Collection[str],
    service_sid: str,
    unsubscribed: Collection[str],
) -> tuple[int, str] | None:
    """Twilio's documented 400 for a create, the first that applies, or None."""
    to, sender = p.get("To", ""), p.get("From", "")
    service, body = p.get("MessagingServiceSid", ""), p.get("Body", "")
    callback = p.get("StatusCallback")
    checks: list[tuple[bool, int, str]] = [
        (not to, 21604, "A 'To' phone number is required."),
        (not sender and not service, 21603, "A 'From' phone number is required."),
        (not body.strip() and not media_urls, 21602, "Message body is required."),
        (
            len(body) > MAX_BODY,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ),
        (not _E164.match(to), 21211, f"Invalid 'To' Phone Number: {to}"),
        (
            bool(sender) and sender not in numbers,
            21606,
            f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
            "number or short code for your account.",
        ),
        # Code and words are OUR ASSUMPTION; the docs name no error for an unknown service.
        (bool(service) and service != service_sid, 21705, "Invalid Messaging Service"),
        (
            callback is not None and urlsplit(callback).scheme not in ("http", "https"),
            21609,
            "Invalid StatusCallback url",
        ),
        (to in unsubscribed, 21610, "Attempt to send to unsubscribed recipient"),
    ]
    return next(((code, text) for failed, code, text in checks if failed), None)
