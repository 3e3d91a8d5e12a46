"""Serve an ASGI app on a loopback port inside the running event loop (fakes, demo, tests)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.types import ASGIApp


def bind_loopback(port: int = 0) -> socket.socket:
    """Bind before serving so the port is known and nobody can take it in between."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted connections when the
    # listening socket says it is TCP; with proto 0 every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    # Signal handling belongs to whoever owns the process, not to an embedded fake.
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:PORT``)."""
    sock = bind_loopback(port)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def wait_until(
    predicate: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    explain: Callable[[], str],
) -> None:
    """Poll ``predicate`` until true; after ``timeout`` seconds fail with what ``explain`` says."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{describe(predicate)} still false after {timeout}s; {explain()}")
        await asyncio.sleep(0.01)


def describe(predicate: Callable[[], bool]) -> str:
    """The predicate's source line, so a failed wait says what it waited for."""
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))
