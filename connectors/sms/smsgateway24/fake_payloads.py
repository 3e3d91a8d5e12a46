"""The SmsGateway24 fake's data and how the vendor writes it: SMS rows, dates, webhook bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

INCOMING = 5
# statustitle / status_description strings; the vendor's wording varies between its own
# examples ("New", "sending", "delivered"), so these are representative, not authoritative.
TITLES = {
    1: "New",
    2: "Taken from server",
    3: "Queued for sending",
    5: "Income",
    6: "Sent by phone",
    7: "Delivered",
    8: "SMS was NOT Delivered",
    9: "Not sent - Generic failure",
    10: "Not sent - No service",
    11: "Not sent - Null PDU",
    12: "Not sent - Radio off",
    100: "Not sent - NOT ALLOWED",
    101: "Not sent - Not allowed at all",
}


@dataclass
class Sms:
    """A row of the account's one SMS table: sent ones and received ones (status 5) alike."""

    id: int
    sendto: str  # the recipient, or for a received SMS its sender
    body: str
    device_id: int
    sim: int  # slot 0 or 1
    status: int
    created: float
    customerid: int | None = None
    urgent: bool = False
    timetosend: str | None = None
    senttime: float | None = None
    img_url: str | None = None  # WhatsApp images only


def local(ts: float, zone: ZoneInfo) -> datetime:
    """Unix seconds as a naive wall-clock time of the account's zone (how the vendor stores)."""
    return datetime.fromtimestamp(ts, zone).replace(tzinfo=None)


def local_text(ts: float, zone: ZoneInfo) -> str:
    return local(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


def stamp(ts: float | None, zone: ZoneInfo) -> dict[str, Any] | None:
    """A PHP DateTime as the API serialises it (timezone_type 3: a zone name)."""
    if ts is None:
        return None
    moment = local(ts, zone).strftime("%Y-%m-%d %H:%M:%S.%f")
    return {"date": moment, "timezone_type": 3, "timezone": zone.key}


def row(sms: Sms, zone: ZoneInfo) -> dict[str, Any]:
    """A getallsms item, field for field as in the vendor's examples."""
    timetosend = (
        {"date": sms.timetosend, "timezone_type": 3, "timezone": zone.key}
        if sms.timetosend
        else None
    )
    return {
        "id": sms.id,
        "sendto": sms.sendto,
        "body": sms.body,
        "customerid": sms.customerid,
        "status": sms.status,
        "statustitle": TITLES[sms.status],
        "deviceid": sms.device_id,
        "urgent": sms.urgent or None,
        "created": stamp(sms.created, zone),
        "senttime": stamp(sms.senttime, zone),
        "timetosend": timetosend,
        "sim": sms.sim,
        "paketid": None,
        "pakettitle": None,
        "paketbody": None,
    }


def device(device_id: int, now: float, zone: ZoneInfo, seen: float) -> dict[str, Any]:
    """A getalldevices entry, shaped like the documented example."""
    return {
        "id": device_id,
        "title": f"Phone {device_id}",
        "number": None,
        "created": stamp(now - 86400, zone),
        "lastseen": stamp(seen, zone),
        "siminfo": [{"Slot": "0", "Number": "+4915752982212", "CountryIso": "de"}],
        "appversion": "12.1.21",
        "subscription": True,
    }


def incoming(sms: Sms, zone: ZoneInfo, *, internal_id: int, legacy: bool) -> dict[str, Any]:
    """ "Webhooks for incoming SMS". Older versions send ``sim`` where newer ones send
    ``channel_id``, whose numbering is undocumented (here 1 for slot 0, as in the example)."""
    payload: dict[str, Any] = {
        "address": sms.sendto,
        "date": local_text(sms.created, zone),
        "date_sent": local_text(sms.created - 2, zone),
        "body": sms.body,
        "internal_id": internal_id,
        "sms_id": sms.id,
        "device_id": sms.device_id,
        "device_name": f"Phone {sms.device_id}",
        "type": "img" if sms.img_url else "text",
    }
    payload.update({"sim": sms.sim} if legacy else {"channel_id": sms.sim + 1})
    if sms.img_url:
        payload["img_url"] = sms.img_url
    return payload


def status(sms: Sms, zone: ZoneInfo) -> dict[str, Any]:
    """ "Webhooks for SMS delivery statuses", field for field as documented."""
    return {
        "sms_id": sms.id,
        "status_id": sms.status,
        "status_message": TITLES[sms.status],
        "sendto": sms.sendto,
        "senttime": local_text(sms.senttime, zone) if sms.senttime else None,
        "channel_id": sms.sim + 1,
        "device_id": sms.device_id,
    }


def digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def bound(value: str | None, *, end: bool = False) -> datetime | None:
    """A ``begindate``/``enddate`` filter: a wall-clock time, or a date meaning its whole day."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None  # the vendor's PHP would ignore a filter it cannot read
    return datetime.combine(day, datetime.max.time() if end else datetime.min.time())
