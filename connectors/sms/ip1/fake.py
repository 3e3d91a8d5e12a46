"""Loopback fake of the iP1 SMS API v2: batches, messages, conversations, callbacks, faults.

Follows ``gateway-contracts.md`` (c) and the v2 conversations seed. Where iP1 documents nothing
(the send answer, error bodies, pagination) the fake makes one plain choice, marked ASSUMPTION
(see ``fake_ip1_resources``).
Faults are queued per route name: ``send``, ``batches``, ``batch``, ``messages``, ``message``,
``conversation``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.fake_base import LoopbackFake, phrase
from connectors.sms.ip1.fake_resources import (
    NUMBER,
    OWNER,
    Answer,
    Batch,
    Callback,
    Message,
    iso_z,
    object_id,
    problem,
    validate,
)

__all__ = ["NUMBER", "OWNER", "Batch", "Callback", "FakeIp1", "Message", "Req", "problem"]

_Answer = Answer
_NOT_JSON = object()


@dataclass
class Req:
    method: str
    path: str
    route: str
    headers: dict[str, str]
    json: Any
    status: int


class FakeIp1(LoopbackFake[Req]):
    """In-memory iP1 account served by :func:`serve`; answers as the v2 API is documented."""

    label = "iP1"
    kind = "ip1"

    def __init__(
        self,
        api_key: str = "ip1-test-api-key",
        *,
        send_answer: Literal["batch", "messages"] = "batch",
        report_id_field: Literal["messageId", "id"] = "messageId",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.send_answer = send_answer
        self.report_id_field = report_id_field
        self.batches: list[Batch] = []
        self.incoming: list[Message] = []
        self.callbacks: list[Callback] = []
        self.rejected: dict[str, int] = {}  # recipient -> the code its message gets at once
        methods = ["GET", "POST", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    # lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        for records in (self.batches, self.incoming, self.callbacks):
            records.clear()
        self.rejected.clear()
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
        try:
            response = await self._client().post(url, json=payload)
        except httpx.HTTPError:
            return None
        return response.status_code

    def progress(self) -> str:
        return f"{len(self.batches)} batches"

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.api_key}

    # HTTP side ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        route, handler = self._route(request.method, parts)
        raw = await request.body()
        try:
            payload: Any = await request.json() if raw else None
        except ValueError:
            payload = _NOT_JSON

        def answer() -> Response:
            if not self._authorized(request.headers.get("authorization", "")):
                # ASP.NET's bearer handler answers 401 with an empty body.
                return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
            if handler is None:
                return JSONResponse(*problem(404, "Not Found"))
            if payload is _NOT_JSON:
                return JSONResponse(*problem(400, "The request body is not valid JSON."))
            return JSONResponse(*handler(parts, payload))

        def record(response: Response) -> None:
            headers = {k.lower(): v for k, v in request.headers.items()}
            path, status = request.url.path, response.status_code
            self.requests.append(Req(request.method, path, route, headers, payload, status))

        return await self._respond(route, answer, record)

    def _error_response(self, status: int) -> Response:
        return JSONResponse(problem(status, phrase(status))[0], status)

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
        errors = validate(body)
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
