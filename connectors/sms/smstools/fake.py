"""Loopback fake of the Smstools SMS Gateway API v1: account, HTTP routes and fault injection."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.fake_base import Fault
from connectors.sms.smstools import fake_resources as res
from connectors.sms.smstools.fake_resources import (
    INBOX_NUMBER,
    File,
    InboxMessage,
    SentMessage,
    digits,
)
from connectors.sms.smstools.fake_webhooks import WebhooksMixin

__all__ = ["INBOX_NUMBER", "FakeSmstools", "File", "InboxMessage", "Req", "SentMessage"]

_Answer = res.Answer


@dataclass
class Req:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    status: int


class FakeSmstools(WebhooksMixin[Req]):
    """In-memory Smstools account, served on loopback by :func:`serve`.

    A fault queued for a path answers every request whose path starts with it.
    """

    label = "Smstools"
    kind = "smstools"

    def __init__(
        self,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 - a test fixture value
        *,
        timezone: str = "UTC",  # the seed's conversation item shows UTC dates
        inboxes: tuple[str, ...] = (INBOX_NUMBER,),
        media_needs_auth: bool = False,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.zone = ZoneInfo(timezone)  # the account's zone: dates carry none
        self.inboxes = inboxes
        self.media_needs_auth = media_needs_auth
        self.received: list[InboxMessage] = []
        self.sent: list[SentMessage] = []
        self.tested: list[dict[str, Any]] = []  # "test": true sends, validated only
        self.optouts: set[str] = set()
        self.credits: int | None = None  # None: unlimited
        self._next_id = 0
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # lifecycle ------------------------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        self.received.clear()
        self.sent.clear()
        self.tested.clear()
        self.optouts.clear()
        self.credits = None

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

    def _take_fault(self, key: str | None) -> Fault | None:
        # A fault is queued for a path prefix: the first queue that matches and is not empty.
        matching = (q for p, q in self._faults.items() if key and key.startswith(p) and q)
        return next((q.popleft() for q in matching), None)

    def progress(self) -> str:
        return f"{len(self.sent)} SMS sent"

    def credentials(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

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

        def answer() -> Response:
            result, status = self._dispatch(request, path, body)
            return result if isinstance(result, Response) else JSONResponse(result, status)

        def record(response: Response) -> None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            query = dict(request.query_params)
            self.requests.append(
                Req(request.method, path, headers, query, body, response.status_code)
            )

        return await self._respond(path, answer, record)

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
            # HTTP status undocumented ("4xx"): 401 is our assumption.
            return res.error("104", 401)
        method, query = request.method, dict(request.query_params)
        try:
            return self._route(method, parts, query, body)
        except res.Refused as refused:
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
            raise res.Refused(res.error("135")) from None
        if not 1 <= limit <= 2000:
            raise res.Refused(res.error("135"))
        if page < 1:
            raise res.Refused(res.error("136"))
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
        code = res.refusal(data, numbers, self.zone) or (
            "131" if any(digits(n) in self.optouts for n in numbers) else None
        )
        if code is None and data.get("test") is not True and self.credits is not None:
            code = "108" if self.credits < len(numbers) else None
            self.credits -= 0 if code else len(numbers)
        if code is not None:
            return res.error(code)
        if data.get("test") is True:
            self.tested.append(data)
            return {"messageid": res.messageid()}, 200
        ref = data.get("reference")
        accepted = [
            SentMessage(
                res.messageid(), digits(n), data["message"], data["sender"],
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
            return res.error("132", 404)
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
            return res.error("104", 401)
        found = next((f for s in self.received for f in s.files if f.token == token), None)
        if found is None:
            return {"error": "Not found"}, 404
        return Response(found.data, media_type=found.mime), 200
