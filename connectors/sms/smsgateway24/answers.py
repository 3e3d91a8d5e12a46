"""Reading SmsGateway24's answers: errors inside HTTP 200, its list of SMS, numbers as typed."""

from __future__ import annotations

from typing import Any

from bridge.errors import Retryable
from bridge.phone import InvalidNumber, normalize
from connectors.sms.smsgateway24 import webhooks as hooks

LABEL = "SmsGateway24"


def refuses_token(body: dict[str, Any]) -> bool:
    """An ``error: 1`` answer that names the token: after a new login, no retry will help.

    The wording of a token refusal is undocumented, so this only words the final error; any
    ``error: 1`` is first answered with a new login (see ``SmsGateway24._call``).
    """
    return error(body) is not None and "token" in str(body.get("message") or "").lower()


def error(body: dict[str, Any]) -> str | None:
    """The vendor's message when an answer is an application error (HTTP 200), else None."""
    if body.get("error") in (0, "0", None, False):
        return None
    return str(body.get("message") or f"error {body.get('error')}")[:200]


def rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``smss`` is an object keyed by id; PHP writes an empty one as ``[]``."""
    smss = body.get("smss")
    if isinstance(smss, dict):
        items = list(smss.values())
    elif isinstance(smss, list) or smss is None:
        items = smss or []
    else:
        raise Retryable(f"{LABEL} sent an unexpected SMS list")
    found = [row for row in items if isinstance(row, dict) and hooks.as_int(row.get("id"))]
    found.sort(key=lambda row: hooks.as_int(row["id"]) or 0)
    return found


def same_number(raw: Any, number: str) -> bool:
    """The API keeps numbers as typed ("+49 157 ..."); compare them as E.164."""
    try:
        return normalize(str(raw or "")) == number
    except InvalidNumber:
        return False
