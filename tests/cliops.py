"""Running `python -m bridge.cli ...` beside a real `smsbridge run` process, for the tests of
the operator commands (test_cli_ops*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import GROUP, config_dict
from processes import ROOT, BridgeProcess

from bridge.testing.fake_harness import free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

ALICE = "+15551230001"
BOB = "+15551230002"
DUTIES = {"chat:support", "gateway:office", "send:office", "housekeeping"}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def csv(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.out)))


async def cli(
    *args: str,
    timeout: float = 60.0,  # noqa: ASYNC109
    env: dict[str, str] | None = None,
) -> Result:
    """``python -m bridge.cli ...`` without blocking the loop the fakes answer on; ``env``
    is added to this process's environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env} if env else None,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class Running:
    """A bridge process on a config file the commands read too."""

    def __init__(self, tmp_path: Path, data: dict[str, Any], name: str = "bridge") -> None:
        port = free_port()
        self.config = tmp_path / f"{name}.yaml"
        self.config.write_text(
            yaml.safe_dump({**data, "server": {"host": "127.0.0.1", "port": port}}),
            encoding="utf-8",
        )
        self.process = BridgeProcess(self.config, tmp_path / f"{name}.log", port)

    async def start(self) -> None:
        self.process.start()
        await self.process.healthy()

    @property
    def hook(self) -> str:
        return f"{self.process.url}/webhooks/sms/office"

    async def sms(self, gateway: FakeSmsMobileApi, number: str, text: str) -> None:
        response = await gateway.deliver_received_v2(self.hook, gateway.receive_sms(number, text))
        assert response.status_code == 202, response.text


@contextlib.asynccontextmanager
async def sqlite_bridge(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> AsyncIterator[Running]:
    """A bridge on SQLite, started, and killed on exit (its log printed for a failure)."""
    running = Running(
        tmp_path, config_dict(f"sqlite:///{tmp_path / 'store.db'}", gateway, telegram)
    )
    await running.start()
    try:
        yield running
    finally:
        running.process.kill()
        print(running.process.tail())


def posted(telegram: FakeTelegram) -> list[str]:
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP)]
