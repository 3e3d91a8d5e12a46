"""``smsbridge run`` as real child processes, for tests that kill, restart or run several."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


class BridgeProcess:
    """``python -m bridge.cli run`` as a real child process, logging to a file."""

    def __init__(self, config: Path, log: Path, port: int) -> None:
        self.config = config
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bridge.cli", "run", "--config", str(self.config)],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    async def healthy(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109 - a polling helper
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"bridge exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise AssertionError(f"bridge not healthy within {timeout}s:\n{self.tail()}")

    async def backlog(self) -> dict[str, dict[str, int]]:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            report = (await client.get(f"{self.url}/healthz")).json()
        backlog: dict[str, dict[str, int]] = report["store"]["backlog"]
        return backlog

    async def health(self) -> dict[str, Any]:
        """The /healthz report, whatever its status code."""
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            report: dict[str, Any] = (await client.get(f"{self.url}/healthz")).json()
        return report

    async def terminate(self, timeout: float = 15.0) -> int:  # noqa: ASYNC109 - a polling helper
        """SIGTERM, as an orchestrator stops a replica; the exit code.

        Waits without blocking the event loop: the fakes run in this process, and a stopping
        bridge finishes its calls to them (a blocking wait froze the fake Telegram, so the
        bridge's last post timed out and was posted again by the next owner).
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, f"still running {timeout}s after SIGTERM"
            await asyncio.sleep(0.02)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing in memory survives."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
