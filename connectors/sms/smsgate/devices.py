"""What SMSGate says about its phones, for the watchdog: the phone's own health probe (local
mode) and the account's device list (cloud or private server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bridge.errors import Retryable
from bridge.models import DeviceStatus
from connectors.sms.smsgate.config import LABEL
from connectors.webhooks import iso_time


async def phone_health(get: Callable[[str], Awaitable[httpx.Response]]) -> DeviceStatus:
    """``GET /health`` on the phone [doc]: the HealthResponse's ``battery:level`` (percent) and
    ``connection:status`` checks (the app's names [code]). A failing check answers 503 with
    the same body (spec): news about the phone, not an outage of its API, so both are read."""
    try:
        response = await get("/health")
    except httpx.HTTPError as exc:
        raise Retryable(f"{LABEL} unreachable ({type(exc).__name__})") from None
    if response.status_code not in (200, 503):
        raise Retryable(f"{LABEL} health check failed (HTTP {response.status_code})")
    try:
        checks = response.json().get("checks") or {}
    except (ValueError, AttributeError):
        raise Retryable(f"{LABEL} sent a malformed health answer") from None
    battery = checks.get("battery:level", {}).get("observedValue")
    connection = checks.get("connection:status", {}).get("status")
    return DeviceStatus(
        "phone",
        online=None if connection is None else connection != "fail",
        battery=battery if isinstance(battery, int) else None,
    )


def device_list(rows: Any) -> list[DeviceStatus]:
    """``GET /devices`` [doc]: each registered phone's ``lastSeen`` (deleted ones left out)."""
    if not isinstance(rows, list):
        raise Retryable(f"{LABEL} sent an unexpected device list")
    return [
        DeviceStatus(str(row["id"]), last_seen=iso_time(row.get("lastSeen")))
        for row in rows
        if isinstance(row, dict) and row.get("id") and not row.get("deletedAt")
    ]
