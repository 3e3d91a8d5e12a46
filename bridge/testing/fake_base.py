"""What every loopback gateway fake shares: lifecycle, request log, fault injection, webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from bridge.testing.server import serve, wait_until

RecordT = TypeVar("RecordT")


@dataclass
class Fault:
    """One queued answer instead of the real one (see :meth:`LoopbackFake.fail_next`)."""

    status: int
    body: Any
    retry_after: int | None
    delay: float
    raw: bytes | None

    @property
    def slow_accept(self) -> bool:
        # A plain 200 "fault" means: do the work for real, answer late. The client times out
        # although the gateway acted: the case reconciliation exists for.
        return self.status == 200 and self.body is None and self.raw is None


def phrase(status: int) -> str:
    """The HTTP reason phrase, or a stand-in for codes HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"


async def form_pairs(request: Request, *, any_type: bool = False) -> list[tuple[str, str]]:
    """The urlencoded body's pairs (for any body when ``any_type``); none for other bodies."""
    urlencoded = request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    )
    if not (urlencoded or any_type):
        return []
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qsl(body, keep_blank_values=True)


class LoopbackFake(Generic[RecordT]):
    """A vendor API served on 127.0.0.1 by :func:`serve`; subclasses set ``app`` and routes.

    Gives: ``start``/``stop``/``async with``, ``base_url``, ``requests`` (what each subclass
    records per call), ``fail_next`` + :meth:`_respond` for fault injection, ``wait_for``, and
    one lazily created httpx client (``trust_env=False``) for calls to the bridge.
    """

    app: ASGIApp
    label = "gateway"  # how wait_for's failure names the fake
    kind = ""  # the gateway ``type`` of a bridge config

    def __init__(self) -> None:
        self.requests: list[RecordT] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._root_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._http: httpx.AsyncClient | None = None

    # lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What a client configures; the server root unless a subclass says otherwise."""
        return self.root_url

    @property
    def root_url(self) -> str:
        if self._root_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._root_url

    async def start(self) -> str:
        if self._stack is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        stack = contextlib.AsyncExitStack()
        self._root_url = await stack.enter_async_context(serve(self.app))
        await self._serve_more(stack)
        self._stack = stack
        return self.base_url

    async def _serve_more(self, stack: contextlib.AsyncExitStack) -> None:
        """Start further servers of the fake (another host) on ``stack``."""

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
        """Forget requests and pending faults; subclasses forget their data too."""
        self.requests.clear()
        self._faults.clear()

    # fault injection --------------------------------------------------------------------------

    def fail_next(
        self,
        key: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        body: Any = None,
        delay: float = 0.0,
        raw: bytes | None = None,
    ) -> None:
        """The next ``count`` calls of ``key`` (a route or path, see the fake) answer this
        instead: ``raw`` exact bytes (e.g. truncated JSON), else ``body`` as JSON, else the
        vendor's usual error; ``status=200`` alone = process for real, answer ``delay`` late."""
        queue = self._faults.setdefault(self._fault_key(key), deque())
        queue.extend(Fault(status, body, retry_after, delay, raw) for _ in range(count))

    def clear_faults(self, key: str | None = None) -> None:
        """The remote is back: forget the faults still queued for ``key`` (None: for all)."""
        if key is None:
            self._faults.clear()
        else:
            self._faults.pop(self._fault_key(key), None)

    def _fault_key(self, key: str) -> str:
        return key

    def _take_fault(self, key: str | None) -> Fault | None:
        queue = self._faults.get(key) if key is not None else None
        return queue.popleft() if queue else None

    async def _respond(
        self,
        key: str | None,
        answer: Callable[[], Response],
        record: Callable[[Response], None],
    ) -> Response:
        """``answer()`` unless a fault is queued for ``key`` (None: no fault applies), then
        ``record`` it: before a slow accept's delay, so a test sees the effect while the client
        still waits."""
        fault = self._take_fault(key)
        if fault is not None and not fault.slow_accept:
            await asyncio.sleep(fault.delay)
            response = self._fault_response(fault)
        else:
            response = answer()
        record(response)
        if fault is not None and fault.slow_accept:
            await asyncio.sleep(fault.delay)
        return response

    def _fault_response(self, fault: Fault) -> Response:
        if fault.raw is not None:
            response = Response(fault.raw, fault.status, media_type="application/json")
        elif fault.body is not None:
            response = JSONResponse(fault.body, fault.status)
        else:
            response = self._error_response(fault.status)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    def _error_response(self, status: int) -> Response:
        """The vendor's own answer for an injected ``status`` without a body."""
        return JSONResponse({"error": phrase(status)}, status)

    # helpers ----------------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(predicate, timeout, lambda: f"fake {self.label}: {self.progress()}")

    def progress(self) -> str:
        """What a failed ``wait_for`` reports about the fake."""
        return f"{len(self.requests)} requests"

    def section(self, name: str, **settings: Any) -> dict[str, Any]:
        """The ``gateways`` entry of a bridge config that reaches this fake, plus ``settings``."""
        own = {"name": name, "type": self.kind, "base_url": self.base_url}
        return own | self.credentials() | settings

    def credentials(self) -> dict[str, Any]:
        """The config settings that let a connector in."""
        return {}

    # the gateway -> bridge direction ----------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        # One client per fake so benchmarks don't pay a TLS context per delivery; trust_env=False
        # so a developer's HTTP(S)_PROXY cannot swallow deliveries meant for a loopback bridge.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        return self._http

    async def post_json(
        self, url: str, payload: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST ``payload`` (JSON-encoded unless already bytes) to the bridge."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json"} | (headers or {})
        return await self._client().post(url, content=body, headers=sent)
