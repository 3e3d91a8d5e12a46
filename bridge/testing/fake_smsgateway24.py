"""Loopback fake of the SmsGateway24 API: token login, one SMS table, device webhooks, faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing import fake_smsgateway24_payloads as shape
from bridge.testing.fake_smsgateway24_payloads import INCOMING, TITLES, Sms
from bridge.testing.server import serve, wait_until

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


@dataclass
class _Fault:
    status: int
    body: Any
    retry_after: int | None
    delay: float
    raw: bytes | None

    @property
    def slow_accept(self) -> bool:
        # A plain 200 "fault" means: do the work for real, answer late. The client times out
        # although the SMS was saved: the case reconciliation exists for.
        return self.status == 200 and self.body is None and self.raw is None


def _error(message: str) -> _Answer:
    # The vendor's errors are HTTP 200 with error: 1 (the PHP SDK throws on exactly that).
    return {"error": 1, "message": message}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class FakeSmsGateway24:
    """An SmsGateway24 account with a few Android devices, served on loopback by :func:`serve`."""

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
        self.email = email
        self.password = password
        self.devices = list(devices)
        self.token_ttl = token_ttl
        self.zone = ZoneInfo(timezone)  # the account's zone: dates in and out use it
        self.api_token = secrets.token_hex(16)  # the one shown in the profile; never expires
        self.tokens: dict[str, float] = {}  # issued by gettoken -> when
        self.logins = 0
        self.messages: list[Sms] = []
        self.requests: list[Req] = []
        self._first_id = first_id
        self._next_id = first_id
        self._faults: dict[str, deque[_Fault]] = {}
        self._base_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._http: httpx.AsyncClient | None = None
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
        if self._base_url is None:
            raise RuntimeError("FakeSmsGateway24 is not started")
        return f"{self._base_url}/getdata"

    async def start(self) -> str:
        if self._stack is not None:
            raise RuntimeError("FakeSmsGateway24 is already started")
        stack = contextlib.AsyncExitStack()
        self._base_url = await stack.enter_async_context(serve(self.app))
        self._stack = stack
        return self.base_url

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def reset(self) -> None:
        """Forget messages, requests, logins and faults, so one server can serve many tests."""
        self.messages.clear()
        self.requests.clear()
        self.tokens.clear()
        self._faults.clear()
        self.logins = 0
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

    def fail_next(
        self,
        endpoint: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        """The next ``count`` calls of ``endpoint`` answer this instead (``raw``: exact bytes,
        e.g. truncated JSON; status 200 with no body: really done, but answered ``delay`` late)."""
        queue = self._faults.setdefault(endpoint.strip("/"), deque())
        queue.extend(_Fault(status, body, retry_after, delay, raw) for _ in range(count))

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(predicate, timeout, lambda: f"fake SmsGateway24: {len(self.sent)} sent")

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

    async def post_json(self, url: str, payload: Any) -> httpx.Response:
        if self._http is None:
            # trust_env=False: a developer's proxy must not swallow calls to a loopback bridge.
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        body = json.dumps(payload).encode()
        return await self._http.post(
            url, content=body, headers={"Content-Type": "application/json"}
        )

    # HTTP side --------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"].strip("/").lower()
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = (await request.body()).decode("utf-8", "replace")
            params.update(parse_qsl(form, keep_blank_values=True))
        queue = self._faults.get(endpoint)
        fault = queue.popleft() if queue else None
        if fault is not None and not fault.slow_accept:
            await asyncio.sleep(fault.delay)
            response = _fault_response(fault)
        elif endpoint == "gettoken":
            response = JSONResponse(self._gettoken(params))
        elif endpoint not in self._routes:
            response = Response("<h1>404 Not Found</h1>", 404, media_type="text/html")
        elif not self._token_ok(params.get("token", "")):
            response = JSONResponse(_error(INVALID_TOKEN))
        else:
            response = JSONResponse(self._routes[endpoint](params))
        # Recorded before a slow accept's delay, so a test sees the effect while the client waits.
        self.requests.append(Req(request.method, endpoint, params, response.status_code))
        if fault is not None and fault.slow_accept:
            await asyncio.sleep(fault.delay)
        return response

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
        devices = {str(d): shape.device(d, now, self.zone) for d in self.devices}
        return {"count": len(devices), "device": devices}

    def _getdevicestatus(self, p: dict[str, str]) -> _Answer:
        device = _int(p.get("device_id"))
        if device not in self.devices:
            return _error("Device not found")
        return {
            "lastseen": shape.stamp(time.time(), self.zone),
            "device_id": device,
            "title": f"Phone {device}",
        }

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _fault_response(fault: _Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.raw is not None:
        return Response(fault.raw, fault.status, headers=headers, media_type="application/json")
    if fault.body is not None:
        return JSONResponse(fault.body, fault.status, headers=headers)
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Injected fault"
    # What nginx in front of PHP answers for a 5xx or 429: an HTML page, not JSON.
    return Response(
        f"<h1>{fault.status} {phrase}</h1>", fault.status, headers=headers, media_type="text/html"
    )
