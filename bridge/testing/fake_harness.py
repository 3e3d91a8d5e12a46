"""Shared helpers of the gateway tests: a webhook receiver, a running bridge (no pytest here:
the package ships; the fixtures built on pytest are in tests/harness.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.app import Bridge
from bridge.config import Config, parse_config
from bridge.models import WebhookRequest
from bridge.testing.server import serve

# contract tests ----------------------------------------------------------------------------------


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


class Started:
    """``await started(connector)`` starts it; leaving ``async with`` stops every one."""

    def __init__(self) -> None:
        self.running: list[_Startable] = []

    async def __call__(self, connector: S) -> S:
        await connector.start()
        self.running.append(connector)
        return connector

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for connector in self.running:
            await connector.stop()


class WebhookReceiver:
    """Stands where the bridge's web server would, at ``url`` and ``url/{token}``: keeps each
    call in ``got`` as ``bridge.web`` hands it to a connector, and answers ``answer(call)``."""

    def __init__(
        self,
        gateway: str,
        answer: Callable[[WebhookRequest], Response] = lambda _: Response(status_code=202),
    ) -> None:
        self.gateway = gateway
        self.answer = answer
        self.got: list[WebhookRequest] = []
        self.url = ""
        methods = ["GET", "POST"]
        self.app = Starlette(
            routes=[
                Route("/hook", self._hook, methods=methods),
                Route("/hook/{token}", self._hook, methods=methods),
            ]
        )

    async def _hook(self, request: Request) -> Response:
        call = WebhookRequest(
            gateway=self.gateway,
            token=request.path_params.get("token"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
            received_at=time.time(),
            url=str(request.url),
            method=request.method,
            query=dict(request.query_params),
        )
        self.got.append(call)
        return self.answer(call)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Self]:
        async with serve(self.app) as root:
            self.url = f"{root}/hook"
            yield self


# end-to-end tests --------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on, for a bridge whose public URL must be known first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bridge_config(
    tmp_path: Path, gateway: dict[str, Any], chat: dict[str, Any], **server: Any
) -> Config:
    """One gateway routed to one chat, a SQLite store in ``tmp_path``, ``server`` overrides."""
    return parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'x.db'}"},
            "server": {"host": "127.0.0.1", "port": 0} | server,
            "gateways": [gateway],
            "chats": [chat],
            "routes": [{"gateway": gateway["name"], "chat": chat["name"]}],
        },
        environ={},
    )


@contextlib.asynccontextmanager
async def running_bridge(config: Config) -> AsyncIterator[Bridge]:
    bridge = Bridge(config)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


async def idle(bridge: Bridge, seconds: float = 5.0) -> None:
    """Until the bridge has recorded everything it posted (a post lands in the chat a moment
    before its mapping is committed; a person reading it is never that quick)."""
    await _until_empty(bridge, ("chat_jobs",), seconds)


async def drained(bridge: Bridge, seconds: float = 5.0) -> None:
    """Until the bridge has no work left: no chat job waiting to be posted (or recorded) and no
    SMS waiting for its gateway to accept it. Work only starts from the store, so a bridge
    drained after it took in everything has done all it is ever going to do with it."""
    await _until_empty(bridge, ("chat_jobs", "outbox"), seconds)


async def _until_empty(bridge: Bridge, queues: tuple[str, ...], seconds: float) -> None:
    assert bridge.store is not None
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        backlog = await bridge.store.backlog()
        if not any(backlog[queue] for queue in queues):
            return
        assert asyncio.get_running_loop().time() < deadline, f"never went idle: {backlog}"
        await asyncio.sleep(0.01)


def polls_ok(bridge: Bridge, gateway: str, kind: str = "inbound") -> int:
    """How many polls of ``gateway`` have succeeded, as /metrics counts them."""
    labels = {"gateway": gateway, "kind": kind, "outcome": "ok"}
    value = bridge.metrics.registry.get_sample_value("smsbridge_polls_total", labels)
    return int(value or 0)


async def more_polls(bridge: Bridge, gateway: str, count: int = 2, seconds: float = 10.0) -> None:
    """Until ``count`` more polls of ``gateway`` have succeeded, then the bridge is idle: what
    those polls found has been posted, so a test can assert that nothing more happens."""
    target = polls_ok(bridge, gateway) + count
    deadline = asyncio.get_running_loop().time() + seconds
    while polls_ok(bridge, gateway) < target:
        assert asyncio.get_running_loop().time() < deadline, f"{gateway} was not polled again"
        await asyncio.sleep(0.01)
    await idle(bridge, seconds)
