"""Loopback fake of the Smstools SMS Gateway API v1, with its webhooks and fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.server import serve, wait_until

INBOX_NUMBER = "32460260667"  # the account's virtual number (the webhook sample's receiver)
MAX_LENGTH = 459
_DOUBLE = set("€[]{}\\^~|")  # count twice towards the length, as the docs say
_Answer = tuple[Any, int]
# Texts for the documented codes; only "Invalid credentials" is quoted by the docs verbatim.
ERRORS = {
    "102": "No message",
    "103": "Number missing",
    "104": "Invalid credentials",
    "106": "Invalid number",
    "108": "Not enough credits",
    "109": "Sender missing",
    "110": "Sender number must start with +",
    "111": "Sender name max 11 characters without special characters",
    "118": "Message too long",
    "121": "Date invalid or in the past",
    "131": "Recipient is on the opt-out list",
    "132": "Inbox not found",
    "135": "Limit must be between 1 and 2000",
    "136": "Page must be bigger than 0",
}


@dataclass
class File:
    name: str
    mime: str
    data: bytes
    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class InboxMessage:
    """An SMS that reached one of the account's inboxes."""

    id: str
    sender: str  # digits, as the API shows numbers
    receiver: str
    message: str
    at: float
    type: str = "sms"
    files: list[File] = field(default_factory=list)


@dataclass
class SentMessage:
    """A message accepted by ``POST /v1/message/send``."""

    messageid: str
    to: str
    message: str
    sender: str
    reference: str | None
    at: float
    status: str | None = None  # deliveryStatus; None until the operator says something


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
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
        # A plain 200 "fault" processes for real and answers late: the sender times out after
        # the vendor acted, the case reconciliation exists for.
        return self.status == 200 and self.body is None and self.raw is None


def digits(number: str) -> str:
    text = number.strip().removeprefix("+")
    return text[2:] if text.startswith("00") else text


def _error(code: str, status: int = 400) -> _Answer:
    return {"error": code, "errorMsg": ERRORS[code]}, status


class _Refused(Exception):
    """An error answer from deep inside a handler."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer[0])
        self.answer = answer


def _messageid() -> str:
    # The docs' sample ids are 31 lower-case letters and digits.
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(31))


class FakeSmstools:
    """In-memory Smstools account, served on loopback by :func:`serve`."""

    def __init__(
        self,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 - a test fixture value
        *,
        timezone: str = "Europe/Brussels",
        inboxes: tuple[str, ...] = (INBOX_NUMBER,),
        media_needs_auth: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.zone = ZoneInfo(timezone)  # the account's zone: dates carry none
        self.inboxes = inboxes
        self.media_needs_auth = media_needs_auth
        self.received: list[InboxMessage] = []
        self.sent: list[SentMessage] = []
        self.tested: list[dict[str, Any]] = []  # "test": true sends, validated only
        self.requests: list[Req] = []
        self.optouts: set[str] = set()
        self.credits: int | None = None  # None: unlimited
        self._faults: dict[str, deque[_Fault]] = {}
        self._next_id = 0
        self._http: httpx.AsyncClient | None = None
        self._base_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeSmstools is not started")
        return self._base_url

    async def start(self) -> str:
        stack = contextlib.AsyncExitStack()
        self._base_url = await stack.enter_async_context(serve(self.app))
        self._stack = stack
        return self._base_url

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
        self.received.clear()
        self.sent.clear()
        self.tested.clear()
        self.requests.clear()
        self.optouts.clear()
        self.credits = None
        self._faults.clear()

    # the phone network's side -----------------------------------------------------------------

    def receive_sms(
        self,
        sender: str,
        message: str,
        *,
        receiver: str = INBOX_NUMBER,
        at: float | None = None,
        files: tuple[tuple[str, str, bytes], ...] = (),
        type: str = "sms",
    ) -> InboxMessage:
        self._next_id += 1
        sms = InboxMessage(
            id=str(self._next_id),
            sender=digits(sender),
            receiver=digits(receiver),
            message=message,
            at=time.time() if at is None else at,
            type=type,
            files=[File(name, mime, data) for name, mime, data in files],
        )
        self.received.append(sms)
        return sms

    def set_status(self, messageid: str, status: str | None) -> SentMessage:
        sms = next((s for s in self.sent if s.messageid == messageid), None)
        if sms is None:
            raise KeyError(messageid)
        sms.status = status
        return sms

    def fail_next(
        self,
        path: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        """The next ``count`` requests whose path starts with ``path`` get this answer."""
        queue = self._faults.setdefault(path, deque())
        queue.extend(_Fault(status, body, retry_after, delay, raw) for _ in range(count))

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(predicate, timeout, lambda: f"fake Smstools: {len(self.sent)} SMS sent")

    # dates as the API writes them ---------------------------------------------------------

    def local(self, at: float, fmt: str) -> str:
        return datetime.fromtimestamp(at, self.zone).strftime(fmt)

    def inbox_row(self, sms: InboxMessage) -> dict[str, Any]:
        return {
            "ID": sms.id,
            "message": sms.message,
            "sender": sms.sender,
            "type": sms.type,
            "date": self.local(sms.at, "%Y-%m-%d %H:%M:%S"),
            "receiver": sms.receiver,
        }

    def conversation_item(self, sms: InboxMessage | SentMessage) -> dict[str, Any]:
        """The seed's item shape; inbound items have ``messageId: null`` as documented."""
        when = self.local(sms.at, "%d %b %Y, %H:%M:%S").lower()
        common = {"datetime": when, "unixDatetime": int(sms.at), "message": sms.message}
        if isinstance(sms, SentMessage):
            return {
                "messageId": sms.messageid,
                "direction": "outbound",
                "sender": sms.sender,
                "receiver": sms.to,
                "file": None,
                **common,
                "deliveryStatus": sms.status,
            }
        files = [
            {"name": f.name, "image": f"{self.base_url}/media/{f.token}/{f.name}", "mime": f.mime}
            for f in sms.files
        ]
        return {
            "messageId": None,
            "direction": "inbound",
            "sender": sms.sender,
            "receiver": sms.receiver,
            "file": files or None,
            **common,
            "deliveryStatus": "DELIVERED",
        }

    # HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        body = await request.body()
        fault = next(
            (q.popleft() for p, q in self._faults.items() if path.startswith(p) and q), None
        )
        if fault is not None and not fault.slow_accept:
            await asyncio.sleep(fault.delay)
            response = _fault_response(fault)
        else:
            answer, status = self._dispatch(request, path, body)
            response = answer if isinstance(answer, Response) else JSONResponse(answer, status)
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params)
        # Recorded before a slow answer so a test sees the effect while the client still waits.
        self.requests.append(Req(request.method, path, headers, query, body, response.status_code))
        if fault is not None and fault.slow_accept:
            await asyncio.sleep(fault.delay)
        return response

    def _authorised(self, request: Request) -> bool:
        # Headers as documented; query parameters as the Pipedream client sends them.
        given_id = request.headers.get("x-client-id") or request.query_params.get("client_id")
        secret = request.headers.get("x-client-secret") or request.query_params.get("client_secret")
        return secrets.compare_digest(given_id or "", self.client_id) and secrets.compare_digest(
            secret or "", self.client_secret
        )

    def _dispatch(self, request: Request, path: str, body: bytes) -> tuple[Any, int]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["media"] and len(parts) == 3:
            return self._media(request, parts[1])
        if not self._authorised(request):
            return _error("104", 401)  # HTTP status undocumented ("4xx"): 401 is our assumption
        method, query = request.method, dict(request.query_params)
        try:
            return self._route(method, parts, query, body)
        except _Refused as refused:
            return refused.answer

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> _Answer:
        if method == "POST" and parts == ["v1", "message", "send"]:
            return self._send(body)
        if method == "GET" and parts[:3] == ["v1", "message", "inbox"] and len(parts) <= 4:
            return self._inbox(query, parts[3] if len(parts) == 4 else None)
        if method == "GET" and parts[:2] == ["v1", "conversation"] and len(parts) == 3:
            return self._conversation(query, parts[2])
        return {"error": "Not found"}, 404

    @staticmethod
    def _page(query: dict[str, str]) -> tuple[int, int]:
        try:
            limit, page = int(query.get("limit", "1000")), int(query.get("page", "1"))
        except ValueError:
            raise _Refused(_error("135")) from None
        if not 1 <= limit <= 2000:
            raise _Refused(_error("135"))
        if page < 1:
            raise _Refused(_error("136"))
        return limit, page

    def _send(self, body: bytes) -> _Answer:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return {"error": "error parsing json"}, 400
        to = data.get("to")
        numbers = [str(n) for n in (to if isinstance(to, list) else [to]) if n]
        code = _refusal(data, numbers, self.zone) or (
            "131" if any(digits(n) in self.optouts for n in numbers) else None
        )
        if code is None and data.get("test") is not True and self.credits is not None:
            code = "108" if self.credits < len(numbers) else None
            self.credits -= 0 if code else len(numbers)
        if code is not None:
            return _error(code)
        if data.get("test") is True:
            self.tested.append(data)
            return {"messageid": _messageid()}, 200
        ref = data.get("reference")
        accepted = [
            SentMessage(
                _messageid(), digits(n), data["message"], data["sender"],
                None if ref is None else str(ref), time.time(),
            )
            for n in numbers
        ]  # fmt: skip
        self.sent.extend(accepted)
        if isinstance(to, list):
            return {"messageids": [s.messageid for s in accepted]}, 200
        return {"messageid": accepted[0].messageid}, 200

    def _inbox(self, query: dict[str, str], inbox: str | None) -> _Answer:
        limit, page = self._page(query)
        if inbox is not None and digits(inbox) not in self.inboxes:
            return _error("132", 404)
        kind = query.get("type")
        rows = [
            s
            for s in self.received
            if (inbox is None or s.receiver == digits(inbox)) and (not kind or s.type == kind)
        ]
        # Newest first, as Pipedream reads it.
        rows.sort(key=lambda s: (s.at, int(s.id)), reverse=True)
        shown = rows[(page - 1) * limit : page * limit]
        messages = [self.inbox_row(s) for s in shown]
        return {
            "total": len(rows),
            "shown": len(shown),
            "page": page,
            "limit": limit,
            "messages": messages,
        }, 200

    def _conversation(self, query: dict[str, str], phone: str) -> _Answer:
        limit, page = self._page(query)
        number = digits(phone)
        items: list[InboxMessage | SentMessage] = [
            *(s for s in self.received if s.sender == number),
            *(s for s in self.sent if s.to == number),
        ]
        items.sort(key=lambda s: s.at, reverse=True)
        shown = items[(page - 1) * limit : page * limit]
        return {
            "total": len(items),
            "shown": len(shown),
            "page": page,
            "limit": limit,
            "conversation": [self.conversation_item(s) for s in shown],
        }, 200

    def _media(self, request: Request, token: str) -> tuple[Any, int]:
        if self.media_needs_auth and not self._authorised(request):
            return _error("104", 401)
        found = next((f for s in self.received for f in s.files if f.token == token), None)
        if found is None:
            return {"error": "Not found"}, 404
        return Response(found.data, media_type=found.mime), 200

    # webhooks, as the vendor would call them -------------------------------------------------

    async def post_webhook(self, url: str, body: Any) -> httpx.Response:
        if self._http is None:
            # trust_env=False: a developer's proxy settings must not swallow loopback calls.
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        return await self._http.post(url, content=raw, headers=headers)

    async def deliver_inbox_message(
        self, url: str, sms: InboxMessage, *, batched: bool = True, **extra: Any
    ) -> httpx.Response:
        """The only sample seen (third-party): a one-element array, no id, no date.

        ``extra`` adds fields to ``message`` for payloads that carry more than the sample.
        """
        event = {
            "webhook_type": "inbox_message",
            "message": {
                "sender": sms.sender,
                "receiver": sms.receiver,
                "content": sms.message,
                **extra,
            },
        }
        return await self.post_webhook(url, [event] if batched else event)

    async def deliver_delivery_report(
        self,
        url: str,
        messageid: str,
        status: str,
        *,
        detail: int | None = None,
        batched: bool = True,
    ) -> httpx.Response:
        """OUR ASSUMPTION of the undocumented report: the message id, our reference, a status
        word as the conversation shows it and, for REJECTED, its detail code. It also moves the
        message's ``deliveryStatus``, so polling tells the same story."""
        sms = next((s for s in self.sent if s.messageid == messageid), None)
        if sms is not None:
            sms.status = status
        message: dict[str, Any] = {
            "messageid": messageid,
            "reference": sms.reference if sms else None,
            "receiver": sms.to if sms else None,
            "status": status,
        }
        if detail is not None:
            message["detail"] = detail
        event = {"webhook_type": "delivery_report", "message": message}
        return await self.post_webhook(url, [event] if batched else event)


def _refusal(data: dict[str, Any], numbers: list[str], zone: ZoneInfo) -> str | None:
    """The documented error code a send request earns, in the order the docs list them."""
    message, to, sender = data.get("message"), data.get("to"), data.get("sender")
    if not isinstance(message, str) or not message:
        return "102"
    if not numbers or (isinstance(to, list) and len(numbers) != len(to)):
        return "103"
    if any(not (d := digits(n)).isdigit() or not 8 <= len(d) <= 15 for n in numbers):
        return "106"
    if not isinstance(sender, str) or not sender:
        return "109"
    if sender.isdigit():
        return "110"
    number = sender.startswith("+")
    if len(sender) > (14 if number else 11) or not sender.lstrip("+").isalnum():
        return "111"
    if sum(2 if c in _DOUBLE else 1 for c in message) > MAX_LENGTH:
        return "118"
    if data.get("date") is not None:
        try:
            scheduled = datetime.strptime(str(data["date"]), "%Y-%m-%d %H:%M")
        except ValueError:
            return "121"
        if scheduled.replace(tzinfo=zone) < datetime.now(UTC):
            return "121"
    return None


def _fault_response(fault: _Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    if fault.raw is not None:
        return Response(fault.raw, fault.status, headers=headers, media_type="application/json")
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Injected fault"
    body = fault.body if fault.body is not None else {"error": phrase}
    return JSONResponse(body, fault.status, headers=headers)
