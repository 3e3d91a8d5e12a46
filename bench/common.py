"""Shared bench plumbing: a bridge in its own process, a lean HTTP load generator, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
GROUP = -1001234567890
AGENT = 111
TOKEN = "bench-token-0123456789"  # the plain webhook's URL token in bridge_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def bridge_config(
    db: Path,
    port: int,
    gateway: Any,
    telegram: Any,
    *,
    fast_pacing: bool,
    receive: str = "webhook",
    store_url: str | None = None,
) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "name": "support",
        "type": "telegram",
        "bot_token": telegram.token,
        "chat_id": GROUP,
        "base_url": telegram.base_url,
        "allowed_user_ids": [AGENT],
        "poll_timeout": 5,
    }
    if fast_pacing:
        # For measuring the bridge itself; Telegram's real limits would dominate otherwise.
        fast = {"messages": 100000, "seconds": 1}
        chat["pacing"] = {"chat": fast, "group": fast, "overall": fast}
    return {
        "store": {"url": store_url or f"sqlite:///{db}"},  # store_url: e.g. PostgreSQL
        "server": {"host": "127.0.0.1", "port": port},
        "log_level": "WARNING",
        "gateways": [
            {
                "name": "office",
                "type": "smsmobileapi",
                "api_key": gateway.api_key,
                "base_url": gateway.base_url,
                "receive": receive,
                "webhook_token": TOKEN,
                "webhook_secret": gateway.webhook_secret,
                "status_poll_interval": 3600,
            }
        ],
        "chats": [chat],
        "routes": [{"gateway": "office", "chat": "support"}],
    }


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smsbridge-bench-") as tmp:
        yield Path(tmp)


@contextlib.asynccontextmanager
async def bridge_process(
    config: dict[str, Any], tmp: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``smsbridge run`` in its own process (its own core), ready when /healthz answers."""
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp / "bridge.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            *os.environ.get("SMSBRIDGE_BENCH_CMD", "-m bridge.cli").split(),
            "run",
            "--config",
            str(path),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    port = config["server"]["port"]
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


async def wait_http(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


def http_post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One raw HTTP/1.1 keep-alive request, built once so sending costs almost nothing."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def plain_webhook(number: str, message: str) -> bytes:
    """A prebuilt request for SMSMobileAPI's plain webhook, as the phone app sends it."""
    body = json.dumps(
        {
            "date": "2026-11-23",
            "hour": "10:00:00",
            "time_received": "2026-11-23 10:00:00",
            "message": message,
            "number": number,
            "guid": uuid.uuid4().hex,
        }
    ).encode()
    return http_post(f"/webhooks/sms/office/{TOKEN}", body, {"Content-Type": "application/json"})


async def blast(port: int, requests: list[bytes], connections: int) -> tuple[float, list[int]]:
    """Send every request over ``connections`` keep-alive sockets; (seconds, status codes)."""
    statuses: list[int] = []
    queue = list(reversed(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                writer.write(queue.pop())
                status_line = await reader.readline()
                statuses.append(int(status_line.split()[1]))
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - start, statuses


def rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20
