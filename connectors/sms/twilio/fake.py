"""Loopback fake of Twilio's Messages API, its webhooks and status callbacks, with fault injection.

Follows twilio.com/docs/messaging/api/message-resource (201 on create, ``{code, message,
more_info, status}`` errors, RFC 2822 dates, ``next_page_uri`` paging, media behind a redirect),
the incoming-message webhook and StatusCallback forms, and X-Twilio-Signature.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bridge.testing.fake_base import form_pairs
from bridge.testing.server import serve
from connectors.sms.twilio import fake_resources as res
from connectors.sms.twilio.fake_mms import fetch_media
from connectors.sms.twilio.fake_resources import FakeMedia, FakeMessage
from connectors.sms.twilio.fake_webhooks import CallbackMixin, signature

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "NUMBER", "SERVICE_SID", "FakeTwilio", "signature"]

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
NUMBER = "+15017122661"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
ROUTES = ("create", "list", "fetch", "media_list", "media", "account")
_MESSAGES = r"^/2010-04-01/Accounts/(?P<acct>[^/]+)/Messages"
_PATHS = (
    ("account", re.compile(r"^/2010-04-01/Accounts/(?P<acct>[^/]+)\.json$")),
    ("messages", re.compile(_MESSAGES + r"\.json$")),
    ("fetch", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)\.json$")),
    ("media_list", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)/Media\.json$")),
    ("media", re.compile(_MESSAGES + r"/(?P<sid>[^/]+)/Media/(?P<me>[^/.]+)(?P<json>\.json)?$")),
)
_Answer = tuple[dict[str, Any], int]
# Twilio's default opt-out keywords (Advanced Opt-Out off): single words, any case.
_STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
_START_WORDS = frozenset({"START", "YES", "UNSTOP"})


@dataclass
class Req:
    """One API request as the fake saw it; ``params`` merges query and form (form wins)."""

    method: str
    path: str
    params: dict[str, str]
    authorized: bool
    status: int
    at: float


class FakeTwilio(CallbackMixin[Req]):
    """One Twilio account with one phone number and one Messaging Service, served on loopback.

    Faults are queued per route: one of ``ROUTES``, only for authorised calls.
    """

    label = "Twilio"
    kind = "twilio"

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        numbers: Iterable[str] = (NUMBER,),
        service_sid: str = SERVICE_SID,
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.numbers = list(numbers)
        self.service_sid = service_sid
        self.messages: list[FakeMessage] = []
        self.unsubscribed: set[str] = set()  # numbers that replied STOP: 21610 on send
        self.max_page_size = 1000  # Twilio's cap; tests lower it to exercise paging
        self.account_status = "active"  # active | suspended | closed: tests suspend it
        self._storage: dict[str, FakeMedia] = {}
        self._storage_url: str | None = None
        self.app = Starlette(
            routes=[Route("/2010-04-01/{rest:path}", self._handle, methods=["GET", "POST"])]
        )
        # Twilio's media storage is another host: a client following the redirect must not
        # take the account's credentials along, and only another origin shows whether it does.
        self.storage_app = Starlette(
            routes=[Route("/media-storage/{key}", self._storage_get, methods=["GET"])]
        )

    # lifecycle -------------------------------------------------------------------------------

    async def _serve_more(self, stack: contextlib.AsyncExitStack) -> None:
        self._storage_url = await stack.enter_async_context(serve(self.storage_app))

    def reset(self) -> None:
        """Forget messages, requests and pending faults, so one server can serve many tests."""
        super().reset()
        self.messages.clear()
        self.unsubscribed.clear()
        self._storage.clear()
        self.max_page_size = 1000
        self.account_status = "active"

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
        # Twilio's default opt-out handling: a STOP keyword unsubscribes the sender from the
        # account's numbers (a send to it then fails with 21610) until a START keyword.
        word = body.strip().upper()
        if word in _STOP_WORDS:
            self.unsubscribed.add(from_)
        elif word in _START_WORDS:
            self.unsubscribed.discard(from_)
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

    def _fault_key(self, key: str) -> str:
        if key not in ROUTES:
            raise ValueError(f"unknown route {key!r}; one of {ROUTES}")
        return key

    def progress(self) -> str:
        return f"{len(self.sent)} SMS sent"

    def credentials(self) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "auth_token": self.auth_token}

    # HTTP side -------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        at = time.time()
        path = request.url.path
        params = dict(request.query_params)
        pairs = await form_pairs(request, any_type=True) if request.method == "POST" else []
        params.update(pairs)
        kind, match = _route(path, request.method)
        authorized = self._authorized(request.headers.get("authorization"), match)
        media_urls = [v for k, v in pairs if k == "MediaUrl"]
        fetched: tuple[list[FakeMedia], tuple[int, str] | None] = ([], None)
        if kind == "create" and authorized and media_urls and not self._faults.get(kind):
            # Twilio fetches each MediaUrl (from the bridge, over loopback here) and refuses
            # the request when one cannot be had or is of a type it does not take.
            fetched = await fetch_media(self._client(), media_urls)

        def answer() -> Response:
            if not authorized:
                body_401 = res.error_body(20003, "Authenticate", 401)
                body_401["detail"] = "Your AccountSid or AuthToken was incorrect."
                challenge = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
                return JSONResponse(body_401, 401, headers=challenge)
            if kind is None or match is None:
                return _not_found(path)
            if fetched[1] is not None:
                return JSONResponse(res.error_body(*fetched[1], 400), 400)
            return self._dispatch(kind, match, params, (media_urls, fetched[0]), path)

        def record(response: Response) -> None:
            self.requests.append(
                Req(request.method, path, params, authorized, response.status_code, at)
            )

        return await self._respond((kind or "") if authorized else None, answer, record)

    def _error_response(self, status: int) -> Response:
        if status == 429:
            return JSONResponse(res.error_body(20429, "Too Many Requests", 429), 429)
        body = res.error_body(20500, "An internal server error has occurred", status)
        return JSONResponse(body, status)

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
        sent: tuple[list[str], list[FakeMedia]],
        path: str,
    ) -> Response:
        if kind == "create":
            return JSONResponse(*self._create(params, *sent))
        if kind == "list":
            rows = [m for m in res.newest_first(self.messages) if res.matches(m, params)]
            resources = [res.message_resource(self.account_sid, m) for m in rows]
            return JSONResponse(res.page("messages", resources, params, path, self.max_page_size))
        if kind == "account":
            return JSONResponse(res.account_resource(self.account_sid, self.account_status))
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

    def _create(self, p: dict[str, str], media_urls: list[str], media: list[FakeMedia]) -> _Answer:
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
            media=media,  # what Twilio fetched: the message's Media list
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
