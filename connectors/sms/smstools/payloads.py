"""Smstools answers in our model: status and error codes, zone-less dates, conversation items."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, tzinfo
from typing import Any

from bridge.models import (
    Attachment,
    Status,
)

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
