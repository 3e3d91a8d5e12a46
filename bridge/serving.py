"""The web server inside the bridge's event loop: uvicorn on a socket we bind ourselves."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the bridge's own decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


async def serve(app: Any, host: str, port: int) -> tuple[EmbeddedServer, asyncio.Task[None], int]:
    """Start serving ``app``; (the server, the task serving, the port bound) once it listens.

    The socket is bound here, not by uvicorn, so that port 0 gives a port we can report.
    """
    sock = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    bound: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # its records go to the root logger: our format and masking
        access_log=False,  # paths carry webhook tokens
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return server, task, bound
