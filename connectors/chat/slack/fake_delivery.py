"""The fake Slack handing events and commands to the app: signed HTTP requests or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.websockets import WebSocket, WebSocketDisconnect

from connectors.chat.slack.fake_state import APP_ID, FakeSlackState


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``X-Slack-Signature`` for ``body``: v0 HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """An event or slash command Slack hands to the app, and how each attempt went."""

    kind: str  # "events_api" or "slash_commands"
    payload: dict[str, Any]
    attempts: list[int | str] = field(default_factory=list)  # HTTP status, or "ack"/"timeout"
    answer: Any = None  # the app's answer: response body, or the Socket Mode ack payload
    done: bool = False

    @property
    def event_id(self) -> str | None:
        value = self.payload.get("event_id")
        return value if isinstance(value, str) else None


def _retry_reason(last: int | str) -> str:
    """``X-Slack-Retry-Reason`` for what happened to the previous attempt."""
    if last == "timeout":
        return "http_timeout"
    return "http_error" if isinstance(last, int) else "connection_failed"


class EventDelivery(FakeSlackState):
    """Events and commands go to ``request_url`` (signed, retried like Slack) or, while a
    Socket Mode connection is open, over it (acknowledged by envelope id, redelivered if not).

    Either way the app has ``ack_timeout`` seconds to answer: Slack then counts the attempt as
    failed and retries, whether or not the app is still working on the first one.
    """

    def __init__(
        self, *, signing_secret: str, ack_timeout: float, retry_delays: tuple[float, ...]
    ) -> None:
        super().__init__()
        self.signing_secret = signing_secret
        self.ack_timeout = ack_timeout
        self.retry_delays = retry_delays
        self.request_url: str | None = None
        self.deliveries: list[Delivery] = []
        self._queue: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._sockets: list[WebSocket] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pusher: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._abandoned: set[asyncio.Task[httpx.Response]] = set()

    async def _start_delivery(self) -> None:
        self._http = httpx.AsyncClient(timeout=30.0, trust_env=False)
        self._pusher = asyncio.create_task(self._push_loop())

    async def _stop_delivery(self) -> None:
        tasks = [t for t in (self._pusher, *self._abandoned) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pusher = None
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    def _deliver(self, kind: str, payload: dict[str, Any]) -> None:
        self._queue.append(Delivery(kind, payload))
        self._wakeup.set()

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        """Headers Slack puts on a request to the app (``secret``/``timestamp`` to forge one)."""
        stamp = int(time.time()) if timestamp is None else timestamp
        return {
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(secret or self.signing_secret, stamp, body),
        }

    async def post_to_app(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        kind: str = "events_api",
        retry_num: int | None = None,
        retry_reason: str = "http_error",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """A signed request to the app, as Slack makes it: an event as JSON, a command as a form."""
        assert self._http is not None, "start() first"
        if kind == "events_api":
            body = json.dumps(payload).encode()
            content_type = "application/json"
        else:
            body = urlencode(payload).encode()
            content_type = "application/x-www-form-urlencoded"
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        headers.update(self.signed_headers(body, timestamp=timestamp, secret=secret))
        if retry_num:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        return await self._http.post(url, content=body, headers=headers)

    async def _push_loop(self) -> None:
        while True:
            if not self._queue or not (self._sockets or self.request_url):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delivery = self._queue[0]
            if self._sockets:
                ok = await self._attempt_socket(delivery, self._sockets[-1])
            else:
                ok = await self._attempt_http(delivery)
            retries = len(delivery.attempts) - 1
            # Slack retries events three times; a slash command gets one chance.
            if ok or delivery.kind != "events_api" or retries >= len(self.retry_delays):
                delivery.done = True
                self._queue.popleft()
                self.deliveries.append(delivery)
                continue
            await asyncio.sleep(self.retry_delays[retries])

    async def _attempt_http(self, delivery: Delivery) -> bool:
        assert self.request_url is not None
        retry = len(delivery.attempts)
        reason = _retry_reason(delivery.attempts[-1]) if retry else "http_error"
        request = asyncio.create_task(
            self.post_to_app(
                self.request_url,
                delivery.payload,
                kind=delivery.kind,
                retry_num=retry or None,
                retry_reason=reason,
            )
        )
        # Like Slack, the fake stops waiting but leaves the request be: the app may still be at
        # work on it when the retry arrives. (asyncio.wait, unlike wait_for, cancels nothing.)
        try:
            await asyncio.wait({request}, timeout=self.ack_timeout)
        except asyncio.CancelledError:
            request.cancel()  # the fake is stopping
            raise
        if not request.done():
            self._abandoned.add(request)
            request.add_done_callback(self._forget)
            delivery.attempts.append("timeout")
            return False
        try:
            response = request.result()
        except Exception as exc:  # the app is unreachable: Slack counts a failed attempt
            delivery.attempts.append(type(exc).__name__)
            return False
        delivery.attempts.append(response.status_code)
        delivery.answer = response.content
        return response.is_success

    def _forget(self, request: asyncio.Task[httpx.Response]) -> None:
        self._abandoned.discard(request)
        if not request.cancelled():
            request.exception()  # a late failure of an attempt Slack gave up on: nobody cares

    async def _attempt_socket(self, delivery: Delivery, socket: WebSocket) -> bool:
        retry = len(delivery.attempts)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": delivery.payload,
            "type": delivery.kind,
            "accepts_response_payload": delivery.kind != "events_api",
        }
        if delivery.kind == "events_api":
            envelope["retry_attempt"] = retry
            envelope["retry_reason"] = "timeout" if retry else ""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        try:
            await socket.send_text(json.dumps(envelope))
            await asyncio.wait({future}, timeout=self.ack_timeout)
            if not future.done():
                delivery.attempts.append("timeout")
                return False
            ack = future.result()
        except Exception as exc:  # the connection broke while sending
            delivery.attempts.append(type(exc).__name__)
            return False
        finally:
            self._acks.pop(envelope_id, None)
        delivery.attempts.append("ack")
        delivery.answer = ack.get("payload")
        return True

    async def _link(self, socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets) + 1,
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        self._sockets.append(socket)
        self._wakeup.set()
        try:
            while True:
                text = await socket.receive_text()
                try:
                    ack = json.loads(text)
                except ValueError:
                    self.violations.append(f"Socket Mode: not JSON: {text[:80]!r}")
                    continue
                future = (
                    self._acks.get(ack.get("envelope_id", "")) if isinstance(ack, dict) else None
                )
                if future is None:
                    self.violations.append(
                        f"Socket Mode: ack of an unknown envelope: {text[:80]!r}"
                    )
                elif not future.done():
                    future.set_result(ack)
        except WebSocketDisconnect:
            pass
        finally:
            self._sockets.remove(socket)

    async def disconnect_sockets(self) -> None:
        """Ask every Socket Mode client to reconnect, as Slack does before rotating a server."""
        for socket in list(self._sockets):
            await socket.send_text(
                json.dumps({"type": "disconnect", "reason": "refresh_requested"})
            )

    async def drop_sockets(self) -> None:
        """Close every Socket Mode connection without warning, as a network failure would."""
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.close(code=1011)

    def redeliver(self, delivery: Delivery) -> None:
        """Send a delivered event again, as Slack does when it believes the app missed it."""
        again = Delivery(delivery.kind, delivery.payload)
        self._queue.append(again)
        self._wakeup.set()

    def pending(self) -> int:
        """Events and commands not yet delivered (or still being retried)."""
        return len(self._queue)

    def done(self, event_id: str) -> Delivery | None:
        """The finished delivery of an event, if Slack is done with it."""
        return next((d for d in self.deliveries if d.event_id == event_id), None)
