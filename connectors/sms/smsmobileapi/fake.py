"""Loopback fake of the SMSMobileAPI gateway HTTP API, with webhooks and fault injection."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.fake_base import form_pairs, phrase
from connectors.sms.smsmobileapi import fake_webhooks as wh

DEFAULT_DEVICE = "office-phone-1"
SENT_STATUSES = ("Pending", "Success", "Error")
_Answer = tuple[dict[str, Any], int]


@dataclass
class ReceivedSms:
    """An SMS that arrived on the phone (a row of the vendor's ``logsmsreceive``)."""

    id: int
    guid: str
    number: str
    message: str
    timestamp_unix: int
    alias: str | None
    device: str
    read: bool = False


@dataclass
class SentSms:
    """An SMS submitted through /sendsms/ (a row of the vendor's ``logsmssent``)."""

    guid: str
    recipients: str
    message: str
    sid: str | None
    port: int | None
    at: float
    status: str  # "Pending" | "Success" | "Error", the strings seen in the wild
    error: str | None = None


@dataclass
class Mobile:
    """A phone connected to the account, as /gateway/mobile/list/ shows it; tests change it
    (a phone going offline, its battery running down)."""

    sid: str = DEFAULT_DEVICE
    label: str = "Office"
    battery: int = 87
    online: bool = True
    last_seen: float | None = None  # unix time; None: "now" while online


@dataclass
class Req:
    """One API request as the fake saw it; ``params`` merges query and form (form wins)."""

    method: str
    path: str
    params: dict[str, str]
    at: float
    status: int


def _norm(path: str) -> str:
    # The vendor documents every path with a trailing slash but examples omit it; accept both.
    path = "/" + path.strip("/")
    return path if path == "/" else path + "/"


def _intval(value: str | None, default: int = 0) -> int:
    # Lenient like the vendor's PHP intval(): garbage reads as 0 rather than an error.
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except ValueError:
        return 0


def _error(status: int, message: str) -> _Answer:
    return {"error": status, "message": message}, status


def _numbers(recipients: str) -> list[str]:
    return [n.strip() for n in recipients.split(",") if n.strip()]


class FakeSmsMobileApi(wh.WebhookDeliveryMixin[Req]):
    """In-memory SMSMobileAPI account with one connected phone, served by :func:`serve`."""

    label = "SMSMobileAPI"
    kind = "smsmobileapi"

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        webhook_secret: str = "whsec-test",  # noqa: S107 - a test fixture value
        latency: float = 0.0,
        ms_timestamps: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.latency = latency
        self.ms_timestamps = ms_timestamps
        self.received: list[ReceivedSms] = []
        self.sent: list[SentSms] = []
        self.mobiles = [Mobile()]
        self._next_id = 0
        self._routes: dict[str, Callable[[dict[str, str]], _Answer]] = {
            "/sendsms/": self._sendsms,
            "/getsms/": self._getsms,
            "/getsms/set-read/": self._set_read,
            "/log/sent/sms/": self._log_sent,
            "/conversation/sms/list/": self._conversations,
            "/gateway/mobile/list/": self._mobiles,
        }
        # The seed lists "GET POST" for most endpoints; taking both everywhere costs nothing.
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all messages, requests and pending faults, so one server can serve many tests."""
        super().reset()
        self.received.clear()
        self.sent.clear()
        self.mobiles = [Mobile()]
        self._next_id = 0

    # phone-side simulation --------------------------------------------------------------------

    def receive_sms(
        self,
        number: str,
        message: str,
        *,
        alias: str | None = None,
        device: str = DEFAULT_DEVICE,
        timestamp_unix: int | None = None,
        guid: str | None = None,
    ) -> ReceivedSms:
        self._next_id += 1
        sms = ReceivedSms(
            id=self._next_id,
            guid=guid or str(uuid.uuid4()).upper(),  # the doc's sample GUIDs are upper-case UUIDs
            number=number,
            message=message,
            timestamp_unix=int(time.time()) if timestamp_unix is None else timestamp_unix,
            alias=alias,
            device=device,
        )
        self.received.append(sms)
        return sms

    def set_status(self, guid: str, status: str, error: str | None = None) -> SentSms:
        if status not in SENT_STATUSES:
            raise ValueError(f"status must be one of {SENT_STATUSES}, not {status!r}")
        sms = next((s for s in self.sent if s.guid == guid), None)
        if sms is None:
            raise KeyError(guid)
        sms.status, sms.error = status, error
        return sms

    # fault injection and helpers ---------------------------------------------------------------

    def _fault_key(self, key: str) -> str:
        return _norm(key)

    def progress(self) -> str:
        return f"{len(self.sent)} SMS sent"

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "webhook_secret": self.webhook_secret}

    # HTTP side ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        at = time.monotonic()
        path = _norm(request.url.path)
        params = dict(request.query_params)
        params.update(await form_pairs(request))
        if self.latency:
            await asyncio.sleep(self.latency)

        def answer() -> Response:
            result, status = self._dispatch(path, params, request.headers.get("authorization"))
            return JSONResponse(result, status)

        def record(response: Response) -> None:
            self.requests.append(Req(request.method, path, params, at, response.status_code))

        return await self._respond(path, answer, record)

    def _error_response(self, status: int) -> Response:
        return JSONResponse({"error": status, "message": phrase(status)}, status)

    def _dispatch(self, path: str, params: dict[str, str], authorization: str | None) -> _Answer:
        handler = self._routes.get(path)
        if handler is None:
            return _error(404, "Not found")
        key = params.get("apikey")
        if not key and authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()  # the seed's OAuth2 style; we accept the key itself
        if key != self.api_key:
            if path == "/conversation/sms/list/" and not key:
                # This endpoint documents its own error shape (seed "Error example").
                return {"success": False, "error": "Missing required parameter: apikey"}, 403
            return _error(403, "API key invalid or expired")
        return handler(params)

    def _sendsms(self, p: dict[str, str]) -> _Answer:
        if not p.get("recipients", "").strip():
            return _error(400, "Missing parameter: recipients")
        if "message" not in p:
            return _error(400, "Missing parameter: message")
        if p.get("port", "") not in ("", "1", "2"):
            return _error(400, "Invalid parameter: port")
        if not p.get("schedule_timestamp", "0").isdigit():
            return _error(400, "Invalid parameter: schedule_timestamp")
        if not p["message"].strip():
            # Vendor quirk: an application error inside HTTP 200. Clients must check result.error.
            return {"result": {"error": 1, "sent": "0", "message": "Message is empty"}}, 200
        port = int(p["port"]) if p.get("port") else None
        now = time.time()
        sms = SentSms(
            guid=secrets.token_hex(20),  # 40 hex like the doc's sample id
            recipients=p["recipients"],
            message=p["message"],
            sid=p.get("sIdentifiant") or None,
            port=port,
            at=now,
            status="Pending",
        )
        self.sent.append(sms)
        whatsapp = p.get("sendwa") == "1" or p.get("waonly") == "yes"
        result = {
            "error": 0,
            "sent": "1",
            "id": sms.guid,
            "note": "sent by mobile",
            "datetime": wh.iso_z(now),
            "datetimeLocal": datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds"),
            "port": port,
            "send_with_whatsapp": "1" if whatsapp else "0",
            "trial_account": {"status": "0", "sms_sent": 0},
        }
        return {"result": result}, 200

    def _getsms(self, p: dict[str, str]) -> _Answer:
        scale = 1000 if self.ms_timestamps else 1
        # STRICTLY greater: the vendor does not say whether the bound is inclusive. Strict is the
        # harsher choice for clients (an SMS landing in the same second as the cursor is skipped
        # unless they re-poll from cursor-1 and dedupe on guid), so the fake enforces it.
        after = _intval(p.get("after_timestamp_unix"), default=-1)
        device = p.get("sIdentifiantPhone")
        unread = p.get("onlyunread") == "yes"
        rows = [
            s
            for s in self.received
            if s.timestamp_unix * scale > after
            and (not device or s.device == device)
            and not (unread and s.read)
        ]
        rows.sort(key=lambda s: (s.timestamp_unix, s.id))
        sms = [
            {
                "id": s.id,
                "sIdentifiantPhone": s.device,
                "timestamp_unix": s.timestamp_unix * scale,
                "message": s.message,
                "number": s.number,
                "guid": s.guid,
                "alias": s.alias,
            }
            for s in rows
        ]
        return {"result": {"error": "", "sms": sms}}, 200

    def _set_read(self, p: dict[str, str]) -> _Answer:
        # Response shape undocumented (our assumption); it follows the vendor's 200 + result style.
        guid = p.get("guid_message", "")
        if not guid:
            return _error(400, "Missing parameter: guid_message")
        for s in self.received:
            if s.guid == guid:
                s.read = True
                return {"result": {"error": 0, "guid_message": guid}}, 200
        return {"result": {"error": 1, "message": "Message not found"}}, 200

    def _log_sent(self, p: dict[str, str]) -> _Answer:
        # The real response is undocumented (`additionalProperties: true`): this row shape is OUR
        # ASSUMPTION, built from the documented filters and the status strings seen in the wild.
        rows = sorted(reversed(self.sent), key=lambda s: s.at, reverse=True)  # newest first
        before = p.get("before", "")
        if before.isdigit():
            rows = [s for s in rows if s.at < int(before)]
        elif before:  # "before" may also be a GUID: everything older than that message
            idx = next((i for i, s in enumerate(rows) if s.guid == before), len(rows))
            rows = rows[idx + 1 :]
        if guid := p.get("guid_message"):
            rows = [s for s in rows if s.guid == guid]
        if keyword := p.get("keyword"):
            rows = [s for s in rows if keyword in s.recipients or keyword in s.message]
        if p.get("error_api") == "1" or p.get("error_mobile") == "1":
            rows = [s for s in rows if s.status == "Error"]
        # The fake does not model which side failed, so an Error row carries both flags.
        sms = [
            {
                "guid": s.guid,
                "recipients": s.recipients,
                "message": s.message,
                "sIdentifiant": s.sid,
                "timestamp_unix": int(s.at),
                "status": s.status,
                "error_api": int(s.status == "Error"),
                "error_mobile": int(s.status == "Error"),
                "error_message": s.error,
            }
            for s in rows
        ]
        return {"result": {"error": 0, "count": len(sms), "sms": sms}}, 200

    def _conversations(self, p: dict[str, str]) -> _Answer:
        origin = p.get("origineConversation", "")
        if origin not in ("received", "sent"):
            # HTTP status undocumented; 400 is our assumption, the body is the seed's shape.
            return {
                "success": False,
                "error": "Missing required parameter: origineConversation",
            }, 400
        timeline: dict[str, list[tuple[float, int, dict[str, Any]]]] = {}
        aliases: dict[str, str] = {}
        for r in self.received:
            timeline.setdefault(r.number, []).append((r.timestamp_unix, 0, _line(r)))
            if r.alias:
                aliases[r.number] = r.alias
        for s in self.sent:
            for number in _numbers(s.recipients):
                timeline.setdefault(number, []).append((s.at, 1, _line(s)))
        # The origin only decides which numbers start a conversation; lines are merged either way.
        if origin == "received":
            numbers = {r.number for r in self.received}
        else:
            numbers = {n for s in self.sent for n in _numbers(s.recipients)}
        if numero := p.get("numero"):
            numbers &= {numero}
        ordered = sorted(numbers, key=lambda n: max(t for t, _, _ in timeline[n]))
        if p.get("sort", "DESC").upper() != "ASC":
            ordered.reverse()
        if not numero:
            ordered = ordered[: _intval(p.get("limit"), default=20)]
        resume = p.get("resume") == "1"
        lines_how = _intval(p.get("resume_line_how"), default=1) if resume else None
        conversations = []
        for n in ordered:
            lines = [line for _, _, line in sorted(timeline[n], key=lambda e: (e[0], e[1]))]
            if lines_how is not None:
                lines = lines[-lines_how:] if lines_how > 0 else []
            conversations.append(
                {"phone_number": n, "contact_alias": aliases.get(n), "messages": lines}
            )
        return {
            "success": True,
            "origineConversation": origin,
            "resume": int(resume),
            "resume_line_how": lines_how,
            "conversations": conversations,
        }, 200

    def _mobiles(self, p: dict[str, str]) -> _Answer:
        # Shape undocumented (`additionalProperties: true`; the seed names the searchable fields
        # sid, date, battery, version, label): OUR ASSUMPTION, with "online" as 1/0.
        now = int(time.time())
        rows = [
            {
                "sid": m.sid,
                "label": m.label,
                "battery": str(m.battery),
                "online": 1 if m.online else 0,
                "last_seen_unix": int(m.last_seen) if m.last_seen is not None else now,
            }
            for m in self.mobiles
        ]
        sid, search = p.get("sid"), p.get("search", "").lower()
        found = [
            row
            for row in rows
            if (not sid or sid == row["sid"])
            and (not search or any(search in str(v).lower() for v in row.values()))
        ]
        return {"result": {"error": 0, "mobiles": found}}, 200


def _line(sms: ReceivedSms | SentSms) -> dict[str, Any]:
    """One conversation line in the seed's documented shape (dates in UTC: no timearea modelled)."""
    if isinstance(sms, ReceivedSms):
        ts: float = sms.timestamp_unix
        direction, status, sid = "incoming", "received", sms.device
    else:
        ts, direction, status, sid = sms.at, "outgoing", "sent", sms.sid or DEFAULT_DEVICE
    return {
        "direction": direction,
        "message_id": sms.guid,
        "date": wh.sql_datetime(ts),
        "timestamp_utc": wh.iso_z(ts),
        "message": sms.message,
        "status": status,
        "mobile_sid": sid,
    }
