"""Loopback fake of the iP1 SMS API v2: batches, messages, conversations, callbacks, faults.

Follows ``gateway-contracts.md`` (c) and the v2 conversations seed. Where iP1 documents nothing
(the send answer, error bodies, pagination) the fake makes one plain choice, marked ASSUMPTION.
Faults are queued per route name: ``send``, ``batches``, ``batch``, ``messages``, ``message``,
``conversation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, Self

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.server import serve, wait_until

OWNER = "ip1-12345"
NUMBER = "46101606060"  # the account's number that customers write to
GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà\f^{}\\[~]|€"
)
_Answer = tuple[Any, int]
_NOT_JSON = object()


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_id() -> str:
    """24 hex digits, like the documented ids (``5c613848879973045cf39ac4``)."""
    return secrets.token_hex(12)


@dataclass
class Message:
    """One message resource: an SMS we sent (``mt``) or one that came in (``mo``)."""

    id: str
    batch_id: str
    sender: str
    recipient: str
    body: str
    direction: Literal["mt", "mo"]
    datacoding: str = "gsm"
    reference: str | None = None
    statuses: list[tuple[int, float]] = field(default_factory=list)  # (code, unix time)

    @property
    def code(self) -> int:
        return self.statuses[-1][0]

    def resource(self, *, numeric: bool) -> dict[str, Any]:
        """The seed's representation (numeric enums) or the webhook's (strings)."""
        stamp = self.statuses[-1][1] if self.statuses else time.time()
        mo = self.direction == "mo"
        data: dict[str, Any] = {
            "id": self.id,
            "batchId": self.batch_id,
            "owner": OWNER,
            "sender": self.sender,
            "recipient": self.recipient,
            "body": self.body,
            # ASSUMPTION: 1 = MO, 0 = MT (the seed gives only the enum [0, 1]).
            "direction": int(mo) if numeric else self.direction,
            "segments": 1,
            "type": 0 if numeric else "SMS",
            "datacoding": (2 if self.datacoding == "ucs" else 0) if numeric else "GSM",
            "priority": 1,
            "statuses": [
                {"code": code, "duration": int(code >= 200), "created": iso_z(at)}
                for code, at in self.statuses
            ],
            "modified": iso_z(stamp),
            "mcc": "240",
            "mnc": "01",
        }
        if not mo:
            data |= {"price": 0.041, "currency": "EUR", "reference": self.reference}
        return data


@dataclass
class Batch:
    """A ``POST /v2/batches`` as recorded: the request and the message per recipient."""

    id: str
    request: dict[str, Any]
    messages: list[Message]

    @property
    def report_url(self) -> str | None:
        return self.request.get("deliveryReportUrl")

    def resource(self) -> dict[str, Any]:
        counts = Counter(str(m.code) for m in self.messages)
        summary = {code: {"messages": n, "sms": n} for code, n in counts.items()}
        r = self.request
        return {
            "id": self.id,
            "sender": r["sender"],
            "body": r["body"],
            "owner": OWNER,
            "direction": "MT",
            "type": r.get("type", "sms"),
            "datacoding": str(r.get("datacoding", "ucs")).upper(),
            "priority": r.get("priority", 1),
            "templated": False,
            "priceSummary": {"total": 0.041 * len(self.messages), "currency": "EUR"},
            "messageSummary": summary,
            "status": max(m.code for m in self.messages),
            "deliveryReportUrl": self.report_url,
            "reference": r.get("reference"),
            "tags": r.get("tags") or [],
        }


@dataclass
class Callback:
    """A POST the fake made to a bridge; ``status`` None when the connection failed."""

    url: str
    payload: dict[str, Any]
    status: int | None
    attempts: int = 1


@dataclass
class Req:
    method: str
    path: str
    route: str
    headers: dict[str, str]
    json: Any
    status: int


@dataclass
class _Fault:
    status: int
    body: Any
    retry_after: int | None
    delay: float
    raw: bytes | None


def problem(status: int, title: str, errors: dict[str, list[str]] | None = None) -> _Answer:
    """ASP.NET ProblemDetails, the most likely iP1 error body (ASSUMPTION)."""
    body = {"type": f"https://httpstatuses.io/{status}", "title": title, "status": status}
    return (body | {"errors": errors} if errors else body), status


class FakeIp1:
    """In-memory iP1 account served by :func:`serve`; answers as the v2 API is documented."""

    def __init__(
        self,
        api_key: str = "ip1-test-api-key",
        *,
        send_answer: Literal["batch", "messages"] = "batch",
        report_id_field: Literal["messageId", "id"] = "messageId",
    ) -> None:
        self.api_key = api_key
        self.send_answer = send_answer
        self.report_id_field = report_id_field
        self.batches: list[Batch] = []
        self.incoming: list[Message] = []
        self.requests: list[Req] = []
        self.callbacks: list[Callback] = []
        self.rejected: dict[str, int] = {}  # recipient -> the code its message gets at once
        self._faults: dict[str, deque[_Fault]] = {}
        self._base_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: httpx.AsyncClient | None = None
        methods = ["GET", "POST", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    # lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeIp1 is not started")
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
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def reset(self) -> None:
        for records in (self.batches, self.incoming, self.requests, self.callbacks):
            records.clear()
        self.rejected.clear()
        self._faults.clear()
        self.send_answer, self.report_id_field = "batch", "messageId"

    # the phone network's side ----------------------------------------------------------------

    @property
    def sent(self) -> list[Message]:
        return [m for b in self.batches for m in b.messages]

    def receive_sms(self, sender: str, body: str, *, recipient: str = NUMBER) -> Message:
        """An SMS from ``sender`` (digits, no '+') reaches the account's number."""
        message = Message(object_id(), object_id(), sender, recipient, body, "mo")
        message.statuses.append((201, time.time()))
        self.incoming.append(message)
        return message

    def set_status(self, message: Message, code: int, at: float | None = None) -> None:
        message.statuses.append((code, time.time() if at is None else at))

    def report_payload(self, message: Message, code: int | None = None) -> dict[str, Any]:
        """The documented delivery report for the message's latest (or a given) status."""
        code = message.code if code is None else code
        return {
            self.report_id_field: message.id,
            "batchId": message.batch_id,
            "recipient": message.recipient,
            "code": code,
            "duration": int(code >= 200),
            "created": iso_z(message.statuses[-1][1]),
            "segments": 1,
            "price": 0.041,
            "currency": "eur",
            "reference": message.reference,
        }

    async def report(self, message: Message, code: int) -> Callback | None:
        """A new status, POSTed to the batch's ``deliveryReportUrl`` when it has one."""
        self.set_status(message, code)
        batch = next(b for b in self.batches if b.id == message.batch_id)
        if batch.report_url is None:
            return None
        return await self._call(batch.report_url, self.report_payload(message, code))

    async def deliver_incoming(self, url: str, message: Message) -> Callback:
        """POST the incoming SMS to the portal's "incoming SMS" URL, as iP1 does."""
        return await self._call(url, message.resource(numeric=False))

    async def redeliver(self) -> list[Callback]:
        """iP1's retry (every 10 min, 10 times): callbacks not answered 200 go again."""
        due = [c for c in self.callbacks if c.status != 200 and c.attempts < 11]
        for callback in due:
            callback.status = await self._post(callback.url, callback.payload)
            callback.attempts += 1
        return due

    async def _call(self, url: str, payload: dict[str, Any]) -> Callback:
        callback = Callback(url, payload, await self._post(url, payload))
        self.callbacks.append(callback)
        return callback

    async def _post(self, url: str, payload: dict[str, Any]) -> int | None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10, trust_env=False)
        try:
            response = await self._client.post(url, json=payload)
        except httpx.HTTPError:
            return None
        return response.status_code

    # faults and helpers ------------------------------------------------------------------------

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
        """Answer the next ``count`` calls of ``route`` with a fault. ``status=200`` with no
        body is a slow success: the call takes effect and is answered after ``delay``."""
        queue = self._faults.setdefault(route, deque())
        queue.extend(_Fault(status, body, retry_after, delay, raw) for _ in range(count))

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(predicate, timeout, lambda: f"fake iP1: {len(self.batches)} batches")

    # HTTP side ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        route, handler = self._route(request.method, parts)
        raw = await request.body()
        try:
            payload: Any = await request.json() if raw else None
        except ValueError:
            payload = _NOT_JSON
        fault = self._faults[route].popleft() if self._faults.get(route) else None
        slow = fault is not None and fault.status == 200 and fault.body is None and not fault.raw
        if fault is not None and not slow:
            await asyncio.sleep(fault.delay)
            response = _fault_response(fault)
        elif not self._authorized(request.headers.get("authorization", "")):
            # ASP.NET's bearer handler answers 401 with an empty body.
            response = Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        elif handler is None:
            response = JSONResponse(*problem(404, "Not Found"))
        elif payload is _NOT_JSON:
            response = JSONResponse(*problem(400, "The request body is not valid JSON."))
        else:
            response = JSONResponse(*handler(parts, payload))
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(
            Req(request.method, request.url.path, route, headers, payload, response.status_code)
        )
        if slow and fault is not None:
            await asyncio.sleep(fault.delay)  # recorded first: it took effect, the answer is late
        return response

    def _authorized(self, header: str) -> bool:
        scheme, _, key = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(key.strip(), self.api_key)

    def _route(
        self, method: str, parts: list[str]
    ) -> tuple[str, Callable[[list[str], Any], _Answer] | None]:
        if parts[:2] == ["v2", "batches"]:
            shapes: dict[tuple[str, int], tuple[str, Callable[[list[str], Any], _Answer]]] = {
                ("POST", 2): ("send", self._send),
                ("GET", 2): ("batches", lambda _p, _b: ([b.resource() for b in self.batches], 200)),
                ("GET", 3): ("batch", self._batch),
                ("GET", 4): ("messages", self._messages),
                ("GET", 5): ("message", self._messages),
            }
            if (method, len(parts)) in shapes and (len(parts) < 4 or parts[3] == "messages"):
                return shapes[method, len(parts)]
        if parts[:2] == ["v2", "conversations"] and method == "GET" and len(parts) in (3, 4):
            return "conversation", self._conversation
        return "unknown", None

    def _send(self, _parts: list[str], body: Any) -> _Answer:
        if not isinstance(body, dict):
            return problem(400, "The request body must be a batch object.")
        errors = _validate(body)
        if errors:
            return problem(400, "One or more validation errors occurred.", errors)
        batch = Batch(object_id(), body, [])
        now = time.time()
        for recipient in body["recipients"]:
            message = Message(
                object_id(),
                batch.id,
                body["sender"],
                recipient,
                body["body"],
                "mt",
                str(body.get("datacoding", "ucs")),
                body.get("reference"),
            )
            message.statuses.append((self.rejected.get(recipient, 101), now))
            batch.messages.append(message)
        self.batches.append(batch)
        # ASSUMPTION: the answer is undocumented; 201 with the batch resource, or (switch) the
        # list of its messages, the two shapes the contract tells clients to expect.
        if self.send_answer == "messages":
            return [m.resource(numeric=True) for m in batch.messages], 201
        return batch.resource(), 201

    def _find(self, batch_id: str) -> Batch | None:
        return next((b for b in self.batches if b.id == batch_id), None)

    def _batch(self, parts: list[str], _body: Any) -> _Answer:
        batch = self._find(parts[2])
        return (batch.resource(), 200) if batch else problem(404, "Batch not found")

    def _messages(self, parts: list[str], _body: Any) -> _Answer:
        batch = self._find(parts[2])
        if batch is None:
            return problem(404, "Batch not found")
        if len(parts) == 4:
            return [m.resource(numeric=True) for m in batch.messages], 200
        found = next((m for m in batch.messages if m.id == parts[4]), None)
        return (found.resource(numeric=True), 200) if found else problem(404, "Message not found")

    def _conversation(self, parts: list[str], _body: Any) -> _Answer:
        participant = parts[2]
        only = parts[3] if len(parts) == 4 else None
        if not participant.isdigit() or len(participant) > 15 or only not in (None, "mo", "mt"):
            return problem(400, "Participant was invalid")
        lines = [m for m in self.sent if m.recipient == participant] + [
            m for m in self.incoming if m.sender == participant
        ]
        lines = [m for m in lines if only is None or m.direction == only]
        if not lines:
            return problem(404, "No messages to list")
        # ASSUMPTION: newest first and unpaginated (paging parameters are not documented).
        lines.sort(key=lambda m: m.statuses[0][1], reverse=True)
        return [m.resource(numeric=True) for m in lines], 200


def _validate(body: dict[str, Any]) -> dict[str, list[str]]:
    """The documented constraints of a batch, as ASP.NET model-validation messages."""
    errors: dict[str, list[str]] = {}
    sender = body.get("sender")
    if not isinstance(sender, str) or not (
        (sender.isdigit() and len(sender) <= 15)
        or (3 <= len(sender) <= 11 and sender.isascii() and sender.isalnum())
    ):
        errors["Sender"] = ["The sender must be up to 15 digits or 3-11 alphanumeric characters."]
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        errors["Recipients"] = ["The Recipients field is required."]
    elif not all(isinstance(r, str) and r.isdigit() and len(r) <= 15 for r in recipients):
        errors["Recipients"] = ["Recipients must be MSISDNs: up to 15 digits, without '+'."]
    text = body.get("body")
    if not isinstance(text, str) or not text.strip():
        errors["Body"] = ["The Body field is required."]
    elif len(text) > 2000:
        errors["Body"] = ["The Body may be at most 2000 characters."]
    elif body.get("datacoding") == "gsm" and not all(c in GSM for c in text):
        errors["Body"] = ["The Body contains characters that need datacoding 'ucs'."]
    if body.get("type", "sms") not in ("sms", "flash"):
        errors["Type"] = ["The Type must be 'sms' or 'flash'."]
    if body.get("datacoding", "ucs") not in ("gsm", "ucs"):
        errors["Datacoding"] = ["The Datacoding must be 'gsm' or 'ucs'."]
    if body.get("priority", 1) not in (1, 2):
        errors["Priority"] = ["The Priority must be 1 or 2."]
    return errors


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
    return JSONResponse(problem(fault.status, phrase)[0], fault.status, headers=headers)
