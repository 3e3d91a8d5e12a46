"""Loopback fake of Twilio's Messages API, its webhooks and status callbacks, with fault injection.

Follows twilio.com/docs/messaging/api/message-resource (201 on create, ``{code, message,
more_info, status}`` errors, RFC 2822 dates, ``next_page_uri`` paging, media behind a redirect),
the incoming-message webhook and StatusCallback forms, and X-Twilio-Signature.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bridge.testing import fake_twilio_resources as res
from bridge.testing.fake_twilio_resources import FakeMedia, FakeMessage
from bridge.testing.fake_twilio_webhooks import CallbackMixin, signature
from bridge.testing.server import serve, wait_until

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "NUMBER", "SERVICE_SID", "FakeTwilio", "signature"]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
NUMBER = "+15017122661"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
ROUTES = ("create", "list", "fetch", "media_list", "media")
_MESSAGES = r"^/2010-04-01/Accounts/(?P<acct>[^/]+)/Messages"
_PATHS = (
    ("messages", re.compile(_MESSAGES + r"\.json$")),
    ("fetch", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)\.json$")),
    ("media_list", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)/Media\.json$")),
    ("media", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)/Media/(?P<me>[^/.]+)(?P<json>\.json)?$")),
)
_Answer = tuple[dict[str, Any], int]


@dataclass
class Req:
    """One API request as the fake saw it; ``params`` merges query and form (form wins)."""

    method: str
    path: str
    params: dict[str, str]
    authorized: bool
    status: int
    at: float


@dataclass
class _Fault:
    status: int
    body: Any
    retry_after: int | None
    delay: float
    raw: bytes | None

    @property
    def slow_accept(self) -> bool:
        # A plain 200 "fault": process for real, answer late (the client times out although
        # Twilio created the message: the case reconciliation exists for).
        return self.status == 200 and self.body is None and self.raw is None


class FakeTwilio(CallbackMixin):
    """One Twilio account with one phone number and one Messaging Service, served on loopback."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        numbers: Iterable[str] = (NUMBER,),
        service_sid: str = SERVICE_SID,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = list(numbers)
        self.service_sid = service_sid
        self.messages: list[FakeMessage] = []
        self.requests: list[Req] = []
        self.unsubscribed: set[str] = set()  # numbers that replied STOP: 21610 on send
        self.max_page_size = 1000  # Twilio's cap; tests lower it to exercise paging
        self._faults: dict[str, deque[_Fault]] = {}
        self._storage: dict[str, FakeMedia] = {}
        self._base_url: str | None = None
        self._storage_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.app = Starlette(
            routes=[Route("/2010-04-01/{rest:path}", self._handle, methods=["GET", "POST"])]
        )
        # Twilio's media storage is another host: a client following the redirect must not
        # take the account's credentials along, and only another origin shows whether it does.
        self.storage_app = Starlette(
            routes=[Route("/media-storage/{key}", self._storage_get, methods=["GET"])]
        )

    # lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeTwilio is not started")
        return self._base_url

    async def start(self) -> str:
        if self._stack is not None:
            raise RuntimeError("FakeTwilio is already started")
        stack = contextlib.AsyncExitStack()
        self._base_url = await stack.enter_async_context(serve(self.app))
        self._storage_url = await stack.enter_async_context(serve(self.storage_app))
        self._stack = stack
        return self._base_url

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        await self._close_client()

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
        """Forget messages, requests and pending faults, so one server can serve many tests."""
        self.messages.clear()
        self.requests.clear()
        self.unsubscribed.clear()
        self._faults.clear()
        self._storage.clear()
        self.max_page_size = 1000

    # the account's side ----------------------------------------------------------------------

    @property
    def sent(self) -> list[FakeMessage]:
        return [m for m in self.messages if m.direction.startswith("outbound")]

    def message(self, sid: str) -> FakeMessage:
        found = next((m for m in self.messages if m.sid == sid), None)
        if found is None:
            raise KeyError(sid)
        return found

    def receive_sms(
        self,
        from_: str,
        body: str,
        *,
        to: str | None = None,
        media: Iterable[tuple[str, bytes]] = (),
        at: float | None = None,
        service: bool = False,
    ) -> FakeMessage:
        """An SMS (an MMS with ``media``) arriving at one of the account's numbers."""
        now = time.time() if at is None else at
        items = [FakeMedia(res.new_sid("ME"), kind, data) for kind, data in media]
        message = FakeMessage(
            sid=res.new_sid("MM" if items else "SM"),
            to=to or self.numbers[0],
            from_=from_,
            body=body,
            direction="inbound",
            status="received",
            date_created=now,
            date_sent=now,
            date_updated=now,
            messaging_service_sid=self.service_sid if service else None,
            media=items,
        )
        self.messages.append(message)
        return message

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> FakeMessage:
        """Move an outbound message on, as the carrier would (no callback: see ``advance``)."""
        message = self.message(sid)
        now = time.time()
        message.status, message.error_code, message.date_updated = status, error_code, now
        if status in ("sent", "delivered", "undelivered", "read") and message.date_sent is None:
            message.date_sent = now
        return message

    async def advance(
        self, sid: str, status: str, error_code: int | None = None
    ) -> httpx.Response | None:
        """``set_status`` and, if the message has a StatusCallback, Twilio's callback to it."""
        message = self.set_status(sid, status, error_code)
        if message.status_callback is None:
            return None
        return await self.deliver_status(sid)

    # fault injection and helpers ---------------------------------------------------------------

    def fail_next(
        self,
        route: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        """The next ``count`` authorised calls of ``route`` (one of ``ROUTES``) fail this way;
        ``status=200`` alone means: process for real, then answer after ``delay``."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES}")
        queue = self._faults.setdefault(route, deque())
        queue.extend(_Fault(status, body, retry_after, delay, raw) for _ in range(count))

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(predicate, timeout, lambda: f"fake Twilio: {len(self.sent)} SMS sent")

    # HTTP side -------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        at = time.time()
        path = request.url.path
        params = dict(request.query_params)
        pairs: list[tuple[str, str]] = []
        if request.method == "POST":
            body = (await request.body()).decode("utf-8", "replace")
            pairs = parse_qsl(body, keep_blank_values=True)
            params.update(pairs)
        kind, match = _route(path, request.method)
        authorized = self._authorized(request.headers.get("authorization"), match)
        queue = self._faults.get(kind or "") if authorized else None
        fault = queue.popleft() if queue else None
        if fault is not None and not fault.slow_accept:
            await asyncio.sleep(fault.delay)
            response = _fault_response(fault)
        elif not authorized:
            body_401 = res.error_body(20003, "Authenticate", 401)
            body_401["detail"] = "Your AccountSid or AuthToken was incorrect."
            challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            response = JSONResponse(body_401, 401, headers=challenge)
        elif kind is None or match is None:
            response = _not_found(path)
        else:
            media_urls = [v for k, v in pairs if k == "MediaUrl"]
            response = self._dispatch(kind, match, params, media_urls, path)
        # Recorded before a slow accept's delay, so tests see the side effect while clients wait.
        self.requests.append(
            Req(request.method, path, params, authorized, response.status_code, at)
        )
        if fault is not None and fault.slow_accept:
            await asyncio.sleep(fault.delay)
        return response

    def _authorized(self, header: str | None, match: re.Match[str] | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        ok = hmac.compare_digest(user.encode(), self.account_sid.encode())
        ok = hmac.compare_digest(password.encode(), self.auth_token.encode()) and ok
        return ok and (match is None or match["acct"] == self.account_sid)

    def _dispatch(
        self,
        kind: str,
        match: re.Match[str],
        params: dict[str, str],
        media_urls: list[str],
        path: str,
    ) -> Response:
        if kind == "create":
            return JSONResponse(*self._create(params, media_urls))
        if kind == "list":
            rows = [m for m in res.newest_first(self.messages) if res.matches(m, params)]
            resources = [res.message_resource(self.account_sid, m) for m in rows]
            return JSONResponse(res.page("messages", resources, params, path, self.max_page_size))
        message = next((m for m in self.messages if m.sid == match["sid"]), None)
        if message is None:
            return _not_found(path)
        if kind == "fetch":
            return JSONResponse(res.message_resource(self.account_sid, message))
        if kind == "media_list":
            items = [res.media_resource(self.account_sid, message, x) for x in message.media]
            return JSONResponse(res.page("media_list", items, params, path, self.max_page_size))
        media = next((m for m in message.media if m.sid == match["me"]), None)
        if media is None:
            return _not_found(path)
        if match["json"]:
            return JSONResponse(res.media_resource(self.account_sid, message, media))
        # Twilio answers a media request with a redirect to short-lived storage.
        key = secrets.token_urlsafe(16)
        self._storage[key] = media
        return RedirectResponse(f"{self._storage_url}/media-storage/{key}", status_code=307)

    async def _storage_get(self, request: Request) -> Response:
        media = self._storage.get(request.path_params["key"])
        if media is None:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", 404)
        if request.headers.get("authorization"):
            # Storage must never see the account's credentials (a client bug if it does).
            return Response(b"<Error><Code>InvalidArgument</Code></Error>", 400)
        return Response(media.data, media_type=media.content_type)

    def _create(self, p: dict[str, str], media_urls: list[str]) -> _Answer:
        error = res.refusal(p, media_urls, self.numbers, self.service_sid, self.unsubscribed)
        if error is not None:
            return res.error_body(*error, 400), 400
        now = time.time()
        service = p.get("MessagingServiceSid") or None
        message = FakeMessage(
            sid=res.new_sid("MM" if media_urls else "SM"),
            to=p["To"],
            from_=p.get("From") or self.numbers[0],
            body=p.get("Body", ""),
            direction="outbound-api",
            # Documented: "accepted" through a Messaging Service, "queued" without one.
            status="accepted" if service else "queued",
            date_created=now,
            date_updated=now,
            messaging_service_sid=service,
            status_callback=p.get("StatusCallback"),
            media_urls=media_urls,
        )
        self.messages.append(message)
        return res.message_resource(self.account_sid, message), 201


def _route(path: str, method: str) -> tuple[str | None, re.Match[str] | None]:
    for name, pattern in _PATHS:
        match = pattern.match(path)
        if match is None:
            continue
        if name == "messages":
            return ("create" if method == "POST" else "list"), match
        return (name if method == "GET" else None), match
    return None, None


def _not_found(path: str) -> JSONResponse:
    body = res.error_body(20404, f"The requested resource {path} was not found", 404)
    return JSONResponse(body, 404)


def _fault_response(fault: _Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.raw is not None:
        return Response(fault.raw, fault.status, headers=headers, media_type="application/json")
    if fault.body is not None:
        return JSONResponse(fault.body, fault.status, headers=headers)
    if fault.status == 429:
        body = res.error_body(20429, "Too Many Requests", 429)
    else:
        body = res.error_body(20500, "An internal server error has occurred", fault.status)
    return JSONResponse(body, fault.status, headers=headers)
