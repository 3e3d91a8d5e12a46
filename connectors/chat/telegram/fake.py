"""Faithful local fake of the Telegram Bot API server: its HTTP layer and lifecycle.

Beneath it, one idea a module: ``fake_updates`` (getUpdates, webhook push), ``fake_methods``
(the methods that act on chats), ``fake_humans`` (what people do), ``fake_state`` (the world and
its inspection), ``fake_records`` (its records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.server import serve
from connectors.chat.telegram.fake_records import ANY_THREAD, Call, FakeLimits, Params, Topic
from connectors.chat.telegram.fake_updates import FakeTelegramUpdates, Superseded
from connectors.chat.telegram.spec import ApiError, canonical_method, decode_params, read_params

__all__ = ["ANY_THREAD", "Call", "FakeLimits", "FakeTelegram", "Topic"]

_log = logging.getLogger(__name__)
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    remaining: int


class FakeTelegram(FakeTelegramUpdates):
    """Bot API server for the real PTB client: ``Bot(token, base_url=f"{fake.base_url}/bot")``.

    Anything the spec forbids lands in ``violations``; tests should end with it empty.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - the fake's well-known test token
        *,
        limits: FakeLimits | None = None,
        bot_id: int = 123456,
        bot_username: str = "smsbridge_bot",
        latency: float = 0.0,
    ) -> None:
        super().__init__(bot_id=bot_id, bot_username=bot_username, limits=limits or FakeLimits())
        self.token = token
        self.latency = latency
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )
        self._stack: contextlib.AsyncExitStack | None = None

    def reset(self) -> None:
        """Start over with an empty world on the same server (``limits`` stay as they are)."""
        super().reset()
        self._failures: dict[str, _Failure] = {}

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> str:
        if self._stack is None:
            stack = contextlib.AsyncExitStack()
            self.base_url = await stack.enter_async_context(serve(self.app))
            self._stack = stack
            self._open_updates()
        return self.base_url

    async def stop(self) -> None:
        await self._close_updates()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        description: str = "Internal Server Error",
        count: int = 1,
        retry_after: int | None = None,
    ) -> None:
        name = canonical_method(method) or method
        self._failures[name.lower()] = _Failure(status, description, retry_after, count)

    # -- HTTP -------------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        at = time.monotonic()
        method = canonical_method(request.path_params["method"])
        name = method or request.path_params["method"]
        params: Params = {}
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            raw = await read_params(request)
            params = dict(raw)
            if method is None:
                self.violations.append(f"unknown method {name!r}")
                raise ApiError(404, "Not Found")
            decoded = decode_params(method, raw)
            params = decoded.params
            self.violations.extend(decoded.violations)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if decoded.error:
                raise ApiError(400, decoded.error)
            self._take_failure(method)
            # Implemented methods are named after the API method: sendMessage -> _on_send_message.
            handler = getattr(self, "_on_" + _CAMEL_RE.sub("_", method).lower(), None)
            result = await handler(params) if handler else self._generic(method, params)
            status, body = 200, {"ok": True, "result": result}
        except Superseded as exc:
            if await request.is_disconnected():
                return Response(status_code=exc.status)  # nobody is listening; keep calls clean
            status, body = exc.status, exc.body()
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except ClientDisconnect:
            # The client went away before its request was whole (a kill -9 mid-upload): Telegram
            # never saw a call, so there is nothing to answer and nothing to record.
            return Response(status_code=400)
        except Exception as exc:  # a bug in the fake must fail the test, not hang the client
            _log.exception("fake Telegram crashed in %s", name)
            self.violations.append(f"fake Telegram crashed in {name}: {exc!r}")
            status, body = 500, ApiError(500, "Internal Server Error").body()
        self.calls.append(Call(name, params, at, status))
        return JSONResponse(body, status_code=status)

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] == self.token:
            for path, _, data in self._files.values():
                if path == request.path_params["path"]:
                    return Response(data, media_type="application/octet-stream")
        return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)

    def _take_failure(self, method: str) -> None:
        failure = self._failures.get(method.lower())
        if failure is None:
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            del self._failures[method.lower()]
        raise ApiError(failure.status, failure.description, failure.retry_after)
