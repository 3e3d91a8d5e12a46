"""Faithful local fake of Slack: Web API (spec-checked), file uploads, Events API, Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute

from bridge.testing.server import serve
from connectors.chat.slack import spec as slack_spec
from connectors.chat.slack.fake_api import SlackApiMethods, SlackError, read_params
from connectors.chat.slack.fake_delivery import Delivery, EventDelivery, sign
from connectors.chat.slack.fake_state import (
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


class FakeSlack(EventDelivery, SlackApiMethods):
    """Slack for the real slack_sdk/bolt: ``AsyncWebClient(base_url=fake.api_url)``.

    Events and slash commands go to ``request_url`` or over Socket Mode (``EventDelivery``).
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
        super().__init__(
            signing_secret=signing_secret, ack_timeout=ack_timeout, retry_delays=retry_delays
        )
        self.bot_token = bot_token
        self.app_token = app_token
        self.base_url = ""
        self._failures: dict[str, tuple[str, int, int | None, int]] = {}
        self._slow: dict[str, float] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self.downloads: list[tuple[str, bool]] = []  # (file id, with the bot token?)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/upload/v1/{file_id}", self._upload, methods=["POST"]),
                Route("/files-pri/{key}/{name}", self._download, methods=["GET"]),
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
            await self._start_delivery()
        return self.base_url

    async def stop(self) -> None:
        await self._stop_delivery()
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

    def slow(self, method: str, seconds: float) -> None:
        """Every later call of ``method`` takes ``seconds`` before Slack answers it."""
        self._slow[method] = seconds

    # -- Web API ------------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        at = time.monotonic()
        name = request.path_params["method"]
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        try:
            delay = self._slow.get(name)
            if delay:
                await asyncio.sleep(delay)  # Slack being slow, as a test asked
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
        except ClientDisconnect:
            # The client went away before its request was whole: Slack never saw a call.
            return Response(status_code=400)
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

    # -- files people share ---------------------------------------------------------------------
    def user_file(
        self,
        channel_id: str,
        user: str,
        name: str,
        mimetype: str,
        data: bytes,
        *,
        text: str = "",
        thread_ts: str | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A person shares a file (with ``text`` as its message); the app gets the event
        (unless ``deliver`` is false), and ``url_private`` serves it to the bot token only."""
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        shared = SlackFile(file_id, name, len(data), name, data, channel_id, thread_ts)
        shared.mimetype, shared.user = mimetype, user
        self.files[file_id] = shared
        return self.user_message(
            channel_id,
            user,
            text,
            thread_ts=thread_ts,
            files=[self.file_object(shared)],
            deliver=deliver,
        )

    def _file_url(self, f: SlackFile) -> str:
        return f"{self.base_url}/files-pri/{TEAM_ID}-{f.id}/{f.name}"

    async def _download(self, request: Request) -> Response:
        """``url_private``: the file with ``Authorization: Bearer <bot token>``; without it
        Slack sends a browser to its sign-in page rather than an error."""
        team, _, file_id = request.path_params["key"].partition("-")
        found = self.files.get(file_id) if team == TEAM_ID else None
        bearer = _BEARER.match(request.headers.get("authorization", ""))
        authorized = bearer is not None and bearer.group(1) == self.bot_token and not self.revoked
        self.downloads.append((file_id, authorized))
        if not authorized:
            return RedirectResponse(f"{self.base_url}/?redir=%2Ffiles-pri", status_code=302)
        if found is None or found.data is None:
            return PlainTextResponse("File Not Found", status_code=404)
        return Response(found.data, media_type=found.mimetype)

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
