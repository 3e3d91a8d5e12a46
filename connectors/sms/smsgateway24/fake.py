"""Loopback fake of the SmsGateway24 API: token login, one SMS table, device webhooks, faults."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.fake_base import LoopbackFake, form_pairs, phrase
from connectors.sms.smsgateway24 import fake_payloads as shape
from connectors.sms.smsgateway24.fake_payloads import INCOMING, TITLES, Sms

DEFAULT_DEVICES = (260, 261)
# The answer to a wrong or expired token is undocumented: OUR ASSUMPTION, in the vendor's
# documented error shape ({"error":1,"message":...}, HTTP 200).
INVALID_TOKEN = "Invalid token"
_Answer = dict[str, Any]


@dataclass
class Req:
    """One API call as the fake saw it; ``params`` merges query and form (form wins)."""

    method: str
    endpoint: str
    params: dict[str, str]
    status: int


def _error(message: str) -> _Answer:
    # The vendor's errors are HTTP 200 with error: 1 (the PHP SDK throws on exactly that).
    return {"error": 1, "message": message}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class FakeSmsGateway24(LoopbackFake[Req]):
    """An SmsGateway24 account with a few Android devices, served on loopback by :func:`serve`.

    Faults are queued per endpoint (``addsms``, ``gettoken``, ...).
    """

    label = "SmsGateway24"
    kind = "smsgateway24"

    def __init__(
        self,
        email: str = "owner@example.com",
        password: str = "test-password",  # noqa: S107 - a test fixture value
        *,
        devices: Iterable[int] = DEFAULT_DEVICES,
        token_ttl: float | None = None,
        timezone: str = "Europe/Paris",
        first_id: int = 62807340,
    ) -> None:
        super().__init__()
        self.email = email
        self.password = password
        self.devices = list(devices)
        # When each phone last called the server (unix time); a phone not listed is seen now.
        # Tests set an old time for a phone whose app was killed.
        self.last_seen: dict[int, float] = {}
        self.token_ttl = token_ttl
        self.zone = ZoneInfo(timezone)  # the account's zone: dates in and out use it
        self.api_token = secrets.token_hex(16)  # the one shown in the profile; never expires
        self.tokens: dict[str, float] = {}  # issued by gettoken -> when
        self.logins = 0
        # The words of a token refusal, which are undocumented: tests change them.
        self.token_refusal = INVALID_TOKEN
        self.messages: list[Sms] = []
        self._first_id = first_id
        self._next_id = first_id
        self._routes: dict[str, Callable[[dict[str, str]], _Answer]] = {
            "addsms": self._addsms,
            "getsmsstatus": self._getsmsstatus,
            "getallsms": self._getallsms,
            "getalldevices": self._getalldevices,
            "getdevicestatus": self._getdevicestatus,
        }
        # Every method is documented as "GET, POST"; the SDK uses both.
        route = Route("/getdata/{endpoint}", self._handle, methods=["GET", "POST"])
        self.app = Starlette(routes=[route])

    # lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What a client configures: the API lives under ``/getdata``."""
        return f"{self.root_url}/getdata"

    def reset(self) -> None:
        """Forget messages, requests, logins and faults, so one server can serve many tests."""
        super().reset()
        self.messages.clear()
        self.last_seen.clear()
        self.tokens.clear()
        self.logins = 0
        self.token_refusal = INVALID_TOKEN
        self.token_ttl = None
        self._next_id = self._first_id

    # the account as a test drives it ----------------------------------------------------------

    @property
    def sent(self) -> list[Sms]:
        """SMS saved through the API, oldest first."""
        return [m for m in self.messages if m.status != INCOMING]

    def receive_sms(
        self,
        number: str,
        body: str,
        *,
        device_id: int | None = None,
        sim: int = 0,
        img_url: str | None = None,
        created: float | None = None,
    ) -> Sms:
        """A phone received an SMS (or WhatsApp image) and uploaded it to the account."""
        sms = Sms(
            id=self._new_id(),
            sendto=number,
            body="" if img_url else body,
            device_id=self.devices[0] if device_id is None else device_id,
            sim=sim,
            status=INCOMING,
            created=time.time() if created is None else created,
            img_url=img_url,
        )
        self.messages.append(sms)
        return sms

    def set_status(self, sms_id: int | str, status: int) -> Sms:
        """What the phone reports while sending: 2/3 taken, 6 sent, 7 delivered, 8+ failed."""
        if status not in TITLES or status == INCOMING:
            raise ValueError(f"not a status of a sent SMS: {status}")
        sms = self.find(sms_id)
        sms.status = status
        if status >= 6 and sms.senttime is None:
            sms.senttime = time.time()
        return sms

    def find(self, sms_id: int | str) -> Sms:
        found = next((m for m in self.messages if m.id == int(sms_id)), None)
        if found is None:
            raise KeyError(sms_id)
        return found

    def expire_tokens(self) -> None:
        """Every token from gettoken stops working (the profile's token still works)."""
        self.tokens.clear()

    def _fault_key(self, key: str) -> str:
        return key.strip("/")

    def progress(self) -> str:
        return f"{len(self.sent)} sent"

    def credentials(self) -> dict[str, Any]:
        return {"email": self.email, "password": self.password}

    # device webhooks (set per device on the vendor's website; they sign nothing) ---------------

    def incoming_payload(self, sms: Sms, *, legacy: bool = False) -> dict[str, Any]:
        return shape.incoming(sms, self.zone, internal_id=sms.id - self._first_id, legacy=legacy)

    def status_payload(self, sms: Sms) -> dict[str, Any]:
        return shape.status(sms, self.zone)

    async def deliver_incoming(self, url: str, sms: Sms, *, legacy: bool = False) -> httpx.Response:
        return await self.post_json(url, self.incoming_payload(sms, legacy=legacy))

    async def deliver_status(
        self, url: str, sms_id: int | str, status: int | None = None
    ) -> httpx.Response:
        """Move the SMS to ``status`` (if given) and call the status webhook as the phone would."""
        sms = self.set_status(sms_id, status) if status is not None else self.find(sms_id)
        return await self.post_json(url, self.status_payload(sms))

    # HTTP side --------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"].strip("/").lower()
        params = dict(request.query_params)
        params.update(await form_pairs(request))

        def answer() -> Response:
            if endpoint == "gettoken":
                return JSONResponse(self._gettoken(params))
            if endpoint not in self._routes:
                return Response("<h1>404 Not Found</h1>", 404, media_type="text/html")
            if not self._token_ok(params.get("token", "")):
                return JSONResponse(_error(self.token_refusal))
            return JSONResponse(self._routes[endpoint](params))

        def record(response: Response) -> None:
            self.requests.append(Req(request.method, endpoint, params, response.status_code))

        return await self._respond(endpoint, answer, record)

    def _error_response(self, status: int) -> Response:
        # What nginx in front of PHP answers for a 5xx or 429: an HTML page, not JSON.
        page = f"<h1>{status} {phrase(status)}</h1>"
        return Response(page, status, media_type="text/html")

    def _token_ok(self, token: str) -> bool:
        if token and secrets.compare_digest(token.encode(), self.api_token.encode()):
            return True
        issued = self.tokens.get(token)
        if issued is None:
            return False
        return self.token_ttl is None or time.time() - issued < self.token_ttl

    def _gettoken(self, p: dict[str, str]) -> _Answer:
        if p.get("email") != self.email or p.get("pass") != self.password:
            return _error("Login or password incorrect")
        self.logins += 1
        token = secrets.token_hex(16)
        self.tokens[token] = time.time()
        return {"error": 0, "message": "OK", "token": token}

    def _addsms(self, p: dict[str, str]) -> _Answer:
        for field in ("sendto", "body", "device_id"):
            if not p.get(field, "").strip():
                return _error(f"Field {field} is required")
        device = _int(p["device_id"])
        if device not in self.devices:
            return _error("Device not found")
        sim = _int(p.get("sim")) if p.get("sim") else 0
        if sim not in (0, 1):
            return _error("Sim must be 0 or 1")
        customerid = _int(p.get("customerid"))
        if p.get("customerid") and customerid is None:
            return _error("customerid must be an integer")
        if len(shape.digits(p["sendto"])) < 3:
            return _error("Phone number is incorrect")
        sms = Sms(
            id=self._new_id(),
            sendto=p["sendto"],
            body=p["body"],
            device_id=device,
            sim=sim,
            status=1,
            created=time.time(),
            customerid=customerid,
            urgent=p.get("urgent") == "1",
            timetosend=p.get("timetosend") or None,
        )
        self.messages.append(sms)
        return {"error": 0, "sms_id": sms.id, "message": "Sms has been saved successfully"}

    def _getsmsstatus(self, p: dict[str, str]) -> _Answer:
        sms_id = _int(p.get("sms_id"))
        sms = next((m for m in self.messages if m.id == sms_id), None)
        if sms is None:
            return _error("Sms not found")
        description = TITLES[sms.status]
        return {
            "error": 0,
            "sms_id": sms.id,
            "status": sms.status,
            "status_description": description,
            "message": "Ok",
        }

    def _getallsms(self, p: dict[str, str]) -> _Answer:
        rows = list(self.messages)
        for key, attr in (("device_id", "device_id"), ("status", "status"), ("sim", "sim")):
            if p.get(key):
                rows = [m for m in rows if getattr(m, attr) == _int(p[key])]
        if p.get("customerid"):
            rows = [m for m in rows if m.customerid == _int(p["customerid"])]
        if p.get("phone"):
            rows = [m for m in rows if shape.digits(m.sendto) == shape.digits(p["phone"])]
        # Bounds are dates (or datetimes) in the account's zone; an end date means its whole day.
        if begin := shape.bound(p.get("begindate")):
            rows = [m for m in rows if shape.local(m.created, self.zone) >= begin]
        if end := shape.bound(p.get("enddate"), end=True):
            rows = [m for m in rows if shape.local(m.created, self.zone) <= end]
        rows.sort(key=lambda m: m.id, reverse=p.get("orderbydesc") == "1")
        if p.get("onlycount") == "1":
            return {"error": 0, "count": len(rows), "message": "Ok"}
        smss = {str(m.id): shape.row(m, self.zone) for m in rows}
        # PHP's json_encode writes an empty array as [] (not {}): OUR ASSUMPTION of the
        # vendor's empty answer, kept because clients that expect an object break on it.
        return {"error": 0, "smss": smss or [], "count": len(rows), "message": "Ok"}

    def _getalldevices(self, _p: dict[str, str]) -> _Answer:
        now = time.time()
        devices = {
            str(d): shape.device(d, now, self.zone, self.last_seen.get(d, now))
            for d in self.devices
        }
        return {"count": len(devices), "device": devices}

    def _getdevicestatus(self, p: dict[str, str]) -> _Answer:
        device = _int(p.get("device_id"))
        if device not in self.devices:
            return _error("Device not found")
        return {
            "lastseen": shape.stamp(self.last_seen.get(device, time.time()), self.zone),
            "device_id": device,
            "title": f"Phone {device}",
        }

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id
