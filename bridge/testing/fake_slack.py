"""Faithful local fake of Slack: Web API (spec-checked), file uploads, Events API, Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.testing import slack_spec
from bridge.testing.fake_slack_api import SlackApiMethods, SlackError, read_params
from bridge.testing.fake_slack_state import (
    ANY_THREAD,
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Call,
    Ephemeral,
    Limits,
    SlackFile,
)
from bridge.testing.server import serve

__all__ = [
    "ANY_THREAD",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "Delivery",
    "Ephemeral",
    "FakeSlack",
    "Limits",
    "SlackFile",
    "sign",
]

_log = logging.getLogger(__name__)
_BEARER = re.compile(r"^Bearer\s+(\S+)$")


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


class FakeSlack(SlackApiMethods):
    """Slack for the real slack_sdk/bolt: ``AsyncWebClient(base_url=fake.api_url)``.

    Events and slash commands go to ``request_url`` (signed, retried like Slack) or, while a
    Socket Mode connection is open, over it (acknowledged by envelope id, redelivered if not).
    Anything the specs forbid lands in ``violations``; tests should end with it empty.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-1-fake-bot-token",  # noqa: S107 - the fake's test tokens
        app_token: str = "xapp-1-fake-app-token",  # noqa: S107
        signing_secret: str = "fake-signing-secret-0123456789",  # noqa: S107
        ack_timeout: float = 3.0,
        retry_delays: tuple[float, ...] = (0.0, 0.2, 0.5),
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.ack_timeout = ack_timeout
        self.retry_delays = retry_delays
        self.base_url = ""
        self.request_url: str | None = None
        self.deliveries: list[Delivery] = []
        self._queue: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._sockets: list[WebSocket] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._failures: dict[str, tuple[str, int, int | None, int]] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/upload/v1/{file_id}", self._upload, methods=["POST"]),
                WebSocketRoute("/link/", self._link),
            ]
        )

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        if self._stack is None:
            stack = contextlib.AsyncExitStack()
            self.base_url = await stack.enter_async_context(serve(self.app))
            self._stack = stack
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
            self._pusher = asyncio.create_task(self._push_loop())
        return self.base_url

    async def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def fail_next(
        self,
        method: str,
        error: str = "internal_error",
        *,
        status: int = 200,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` answer ``ok: false`` with ``error``."""
        if error not in slack_spec.errors(method):
            raise ValueError(f"{method} never answers {error!r}")
        self._failures[method] = (error, status, retry_after, count)

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    # -- Web API ------------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        at = time.monotonic()
        name = request.path_params["method"]
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        try:
            params = await read_params(request)
            token = params.pop("token", None)
            match = _BEARER.match(request.headers.get("authorization", ""))
            token = match.group(1) if match else token
            violations, error = slack_spec.check_args(name, {**params, "token": token})
            self.violations.extend(violations)
            if error is not None:
                raise SlackError(error)
            self._check_token(name, token)
            self._take_failure(name)
            handler = getattr(self, "_on_" + name.replace(".", "_"), None)
            if handler is None:
                raise SlackError("unknown_method")
            status, body = 200, {"ok": True, **handler(params)}
        except SlackError as exc:
            if exc.code not in slack_spec.errors(name) and exc.code != "unknown_method":
                self.violations.append(f"fake answered {name} with undocumented {exc.code!r}")
            status, body = exc.status, {"ok": False, "error": exc.code}
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
        except Exception as exc:  # a bug in the fake must fail the test, not hang the client
            _log.exception("fake Slack crashed in %s", name)
            self.violations.append(f"fake Slack crashed in {name}: {exc!r}")
            status, body = 500, {"ok": False, "error": "internal_error"}
        self.calls.append(Call(name, params, at, status, body.get("error")))
        return JSONResponse(body, status_code=status, headers=headers)

    def _check_token(self, method: str, token: str | None) -> None:
        wants_app = method == "apps.connections.open"
        expected = self.app_token if wants_app else self.bot_token
        if token is None:
            raise SlackError("not_authed")
        if token != expected:
            if token in (self.app_token, self.bot_token):
                raise SlackError("not_allowed_token_type")
            raise SlackError("invalid_auth")
        if self.revoked:
            raise SlackError("token_revoked")

    def _take_failure(self, method: str) -> None:
        failure = self._failures.get(method)
        if failure is None:
            return
        error, status, retry_after, count = failure
        if count <= 1:
            del self._failures[method]
        else:
            self._failures[method] = (error, status, retry_after, count - 1)
        raise SlackError(error, status=status, retry_after=retry_after)

    def _upload_url(self, file_id: str) -> str:
        return f"{self.base_url}/upload/v1/{file_id}"

    def _socket_url(self) -> str:
        ws_base = self.base_url.replace("http://", "ws://", 1)
        return f"{ws_base}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"

    async def _upload(self, request: Request) -> Response:
        upload = self.files.get(request.path_params["file_id"])
        data = await request.body()
        if upload is None or upload.data is not None:
            return PlainTextResponse("Not Found", status_code=404)
        if len(data) != upload.length:
            self.violations.append(
                f"upload of {upload.id}: {len(data)} bytes; announced {upload.length}"
            )
        upload.data = data
        return PlainTextResponse(f"OK - {len(data)}")

    # -- events and commands to the app ---------------------------------------------------------
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
            headers["X-Slack-Retry-Reason"] = "http_error"
        return await self._http.post(url, content=body, headers=headers)

    async def _push_loop(self) -> None:
        while True:
            if not self._queue or not (self._sockets or self.request_url):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            delivery = self._queue[0]
            try:
                ok = await self._attempt(delivery)
            except Exception as exc:  # the app is unreachable: Slack counts a failed attempt
                delivery.attempts.append(type(exc).__name__)
                ok = False
            retries = len(delivery.attempts) - 1
            # Slack retries events three times; a slash command gets one chance.
            if ok or delivery.kind != "events_api" or retries >= len(self.retry_delays):
                delivery.done = True
                self._queue.popleft()
                self.deliveries.append(delivery)
                continue
            await asyncio.sleep(self.retry_delays[retries])

    async def _attempt(self, delivery: Delivery) -> bool:
        retry = len(delivery.attempts)
        if self._sockets:
            socket = self._sockets[-1]
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
                ack = await asyncio.wait_for(future, self.ack_timeout)
            except TimeoutError:
                delivery.attempts.append("timeout")
                return False
            finally:
                self._acks.pop(envelope_id, None)
            delivery.attempts.append("ack")
            delivery.answer = ack.get("payload")
            return True
        assert self.request_url is not None
        response = await self.post_to_app(
            self.request_url, delivery.payload, kind=delivery.kind, retry_num=retry or None
        )
        delivery.attempts.append(response.status_code)
        delivery.answer = response.content
        return response.is_success

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
