"""Loopback fake of SMSGate for Android (local phone server or cloud), webhooks and faults."""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.sms.smsgate.fake_phone import (
    DEVICE_ID,
    DeviceMixin,
    Incoming,
    Message,
    PhoneMixin,
    stamp,
)
from connectors.sms.smsgate.fake_spec import Spec, SpecViolation

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
Mode = Literal["local", "cloud"]


@dataclass
class Req:
    """One API request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    auth: str  # "basic" | "bearer" | "none"
    status: int


class FakeSmsGate(PhoneMixin[Req], DeviceMixin):
    """One SMSGate account with one phone, served on loopback by :func:`serve`.

    Faults are queued per operation: send, state, list, inbox, attachment, webhooks, token.
    """

    label = "SMSGate"
    kind = "smsgate"

    def __init__(
        self,
        mode: Mode = "cloud",
        *,
        username: str = "sms",
        password: str = "gate-password",  # noqa: S107 - a test fixture value
        signing_key: str = "signing-key-123",
        spec: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.username = username
        self.password = password
        self.signing_key = signing_key
        self.spec = Spec(spec) if spec is not None else None
        self.prefix = "/3rdparty/v1" if mode == "cloud" else ""
        self.messages: dict[str, Message] = {}
        self.inbox: list[Incoming] = []
        self.webhooks: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, float] = {}  # JWT -> expiry (unix)
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE"])]
        )

    def progress(self) -> str:
        return f"{len(self.messages)} sent"

    def credentials(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "username": self.username,
            "password": self.password,
            "signing_key": self.signing_key,
        }

    # HTTP side --------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ...
        path = "/" + request.path_params["path"].strip("/")
        query = dict(request.query_params)
        auth = self._auth(request.headers.get("authorization", ""))
        op, handler = self._route(request.method, path)

        def answer() -> Response:
            if handler is None:
                return self._error(404, "not found")
            # The phone's /health is a probe: no credentials (spec: security []).
            if (auth == "none" and op != "health") or (op == "token" and auth != "basic"):
                return self._error(401, "Unauthorized")
            if body is ...:
                return self._error(400, "invalid JSON body")
            return handler(path, query, body)

        def record(response: Response) -> None:
            self.requests.append(Req(request.method, path, query, body, auth, response.status_code))

        return await self._respond(op, answer, record)

    def _error_response(self, status: int) -> Response:
        return JSONResponse({"code": status, "message": "injected fault", "data": {}}, status)

    def _auth(self, header: str) -> str:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return "none"
            ok = hmac.compare_digest(f"{user}:{password}", f"{self.username}:{self.password}")
            return "basic" if ok else "none"
        if scheme.lower() == "bearer" and self.mode == "cloud":
            return "bearer" if self.tokens.get(value, 0) > time.time() else "none"
        return "none"

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Response] | None]:
        if not path.startswith(self.prefix + "/"):
            return "unknown", None
        rest = path[len(self.prefix) :]
        if self.mode == "local":  # aliases on the phone's server
            rest = re.sub(r"^/(message|webhook)(?=/|$)", r"/\1s", rest)
        table: list[tuple[str, str, str, Callable[..., Response]]] = [
            ("POST", r"/messages", "send", self._send),
            ("GET", r"/messages", "list", self._list),
            ("GET", r"/messages/[^/]+", "state", self._state),
            ("GET", r"/inbox", "inbox", self._inbox),
            ("GET", r"/inbox/[^/]+/attachments/\d+", "attachment", self._attachment),
            ("POST", r"/webhooks", "webhooks", self._register),
            (
                "GET",
                r"/webhooks",
                "webhooks",
                lambda *_: JSONResponse(list(self.webhooks.values())),
            ),
            ("DELETE", r"/webhooks/[^/]+", "webhooks", self._unregister),
            ("POST", r"/auth/token", "token", self._token),
        ]
        if self.mode == "local":
            table.append(("GET", r"/health", "health", self._health))
        else:
            table.append(("GET", r"/devices", "devices", self._devices))
        for verb, pattern, op, handler in table:
            if verb == method and re.fullmatch(pattern, rest):
                return op, handler
        return "unknown", None

    def _health(self, *_: Any) -> Response:
        body, status = self.health_body()
        return JSONResponse(body, status)

    def _devices(self, *_: Any) -> Response:
        return JSONResponse(self.devices_body())

    def _error(self, status: int, message: str, **extra: Any) -> JSONResponse:
        # The cloud answers ErrorResponse {code, message, data}; the phone only {message}.
        body = (
            {"message": message}
            if self.mode == "local"
            else {"code": status, "message": message, "data": {}}
        )
        return JSONResponse(body | extra, status)

    def _conform(self, schema: str, value: Any) -> None:
        if self.spec is not None:
            self.spec.check(schema, value)

    def _message_json(self, m: Message, content: bool = False) -> dict[str, Any]:
        recipients = [
            {"phoneNumber": n, "state": m.state}
            | ({"error": m.error} if m.state == "Failed" and m.error else {})
            for n in m.phone_numbers
        ]
        out = {
            "id": m.id,
            "deviceId": m.device_id,
            "state": m.state,
            "recipients": recipients,
            "states": dict(m.states),
            "isHashed": False,
            "isEncrypted": False,
        }
        if content:
            out["textMessage"] = {"text": m.text}
        self._conform("smsgateway.GetMessageResponse", out)
        return out

    def _send(self, _path: str, query: dict[str, str], body: Any) -> Response:
        if self.spec is not None:
            try:
                self.spec.check("smsgateway.Message", body)
            except SpecViolation as exc:
                return self._error(400, f"invalid request: {exc}")
        if not isinstance(body, dict):
            return self._error(400, "invalid request")
        kinds = [k for k in ("textMessage", "dataMessage", "message") if body.get(k) is not None]
        if len(kinds) != 1:
            return self._error(
                400, "exactly one of textMessage, dataMessage or message is required"
            )
        if body.get("ttl") is not None and body.get("validUntil") is not None:
            return self._error(400, "ttl and validUntil are mutually exclusive")
        numbers = body.get("phoneNumbers") or []
        if query.get("skipPhoneValidation") != "true":
            bad = [n for n in numbers if not _E164.match(str(n))]
            if bad:
                return self._error(400, f"invalid phone number: {bad[0]}")
        device = body.get("deviceId") or DEVICE_ID
        if device != DEVICE_ID:
            return self._error(400, "device not found")
        message_id = body.get("id") or secrets.token_urlsafe(15)[:21]
        if message_id in self.messages:
            return self._error(409, "message with such ID already exists")
        text = (
            body["textMessage"]["text"]
            if "textMessage" in kinds
            else str(body.get("message") or "")
        )
        message = Message(message_id, list(numbers), text, body.get("simNumber"), device)
        message.states["Pending"] = stamp(datetime.now(UTC))
        self.messages[message_id] = message
        location = f"{self.prefix}/messages/{message_id}"
        return JSONResponse(self._message_json(message), 202, headers={"Location": location})

    def _state(self, path: str, query: dict[str, str], _body: Any) -> Response:
        message = self.messages.get(path.rsplit("/", 1)[-1])
        if message is None:
            return self._error(404, "message not found")
        # ASSUMPTION: the response schema's textMessage is "present only when includeContent
        # =true"; the swagger lists that parameter for GET /messages, the same rule here.
        content = query.get("includeContent") == "true"
        return JSONResponse(self._message_json(message, content))

    def _list(self, _path: str, query: dict[str, str], _body: Any) -> Response:
        rows = list(reversed(self.messages.values()))
        limit, offset = int(query.get("limit", 50)), int(query.get("offset", 0))
        content = query.get("includeContent") == "true"
        page = [self._message_json(m, content) for m in rows[offset : offset + limit]]
        return JSONResponse(page, headers={"X-Total-Count": str(len(rows))})

    def _inbox(self, _path: str, query: dict[str, str], _body: Any) -> Response:
        if self.mode == "cloud":
            return self._error(501, "inbox is available in local mode only")
        try:
            limit, offset = int(query.get("limit", 50)), int(query.get("offset", 0))
            since = (
                datetime.fromisoformat(query["from"].replace("Z", "+00:00"))
                if "from" in query
                else None
            )
        except ValueError:
            return self._error(400, "invalid query parameters")
        if not 1 <= limit <= 500 or offset < 0:
            return self._error(400, "limit must be 1..500 and offset >= 0")
        rows = [
            r
            for r in self.inbox
            if (since is None or r.at >= since) and query.get("type", r.type) == r.type
        ]
        rows.sort(key=lambda r: r.at, reverse=True)  # newest first
        out = []
        for r in rows[offset : offset + limit]:
            item: dict[str, Any] = {
                "id": r.id,
                "type": r.type,
                "sender": r.sender,
                "recipient": None,
                "simNumber": r.sim,
                "contentPreview": r.text,
                "createdAt": stamp(r.at),
            }
            if query.get("includeAttachments") == "true" and r.attachments:
                item["attachments"] = [
                    {"partId": p, "name": n, "contentType": k, "size": len(d)}
                    for p, n, k, d in r.attachments
                ]
            if item["recipient"] is None:
                del item["recipient"]
            self._conform("smsgateway.IncomingMessage", item)
            out.append(item)
        return JSONResponse(out, headers={"X-Total-Count": str(len(rows))})

    def _attachment(self, path: str, _query: dict[str, str], _body: Any) -> Response:
        parts = path.split("/")
        message_id, part_id = parts[-3], int(parts[-1])
        for row in self.inbox:
            for part, _name, _kind, data in row.attachments:
                if row.id == message_id and part == part_id:
                    return Response(data, media_type="application/octet-stream")
        return self._error(404, "attachment not found")

    def _register(self, _path: str, _query: dict[str, str], body: Any) -> Response:
        try:
            if self.spec is not None:
                self.spec.check("smsgateway.Webhook", body)
            if not isinstance(body, dict) or not body.get("url") or not body.get("event"):
                raise SpecViolation("url and event are required")
        except SpecViolation as exc:
            return self._error(400, f"invalid request: {exc}")
        url = str(body["url"])
        if not (url.startswith("https://") or re.match(r"^http://127\.0\.0\.1(:\d+)?(/|$)", url)):
            return self._error(400, "url must be https (only http://127.0.0.1 may be plain http)")
        hook = {
            "id": str(body.get("id") or secrets.token_urlsafe(15)[:21]),
            "url": url,
            "event": body["event"],
        }
        self.webhooks[hook["id"]] = hook  # the same id replaces
        return JSONResponse(hook, 201)

    def _unregister(self, path: str, _query: dict[str, str], _body: Any) -> Response:
        self.webhooks.pop(path.rsplit("/", 1)[-1], None)
        return Response(status_code=204)

    def _token(self, _path: str, _query: dict[str, str], body: Any) -> Response:
        if self.mode == "local":
            return self._error(501, "not implemented")
        try:
            if self.spec is not None:
                self.spec.check("smsgateway.TokenRequest", body)
        except SpecViolation as exc:
            return self._error(400, f"invalid request: {exc}")
        ttl = int((body or {}).get("ttl") or 3600)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + ttl
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        answer = {
            "id": secrets.token_hex(8),
            "token_type": "Bearer",
            "access_token": token,
            "refresh_token": secrets.token_urlsafe(24),
            "expires_at": stamp(expires),
        }
        return JSONResponse(answer, 201)
