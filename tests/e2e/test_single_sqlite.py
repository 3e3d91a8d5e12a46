"""SQLite serves one process: a second `smsbridge run` on the same file is refused at once."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import config_dict
from processes import BridgeProcess
from test_kill_restart import deliver, posted

from bridge.errors import StoreInUse
from bridge.store.engine import Database
from bridge.testing.fake_harness import free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

REFUSED_WITHIN = 10.0  # seconds: the interpreter's imports, then the lock is the first thing


def write_config(
    tmp_path: Path, name: str, database: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> BridgeProcess:
    """A bridge process on ``database`` with a port of its own (so only the store can clash)."""
    port = free_port()
    data = config_dict(
        f"sqlite:///{database}", gateway, telegram, server={"host": "127.0.0.1", "port": port}
    )
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return BridgeProcess(config, tmp_path / f"{name}.log", port)


async def exit_code(bridge: BridgeProcess, timeout: float) -> int | None:  # noqa: ASYNC109
    """The process's exit code, or None if it is still running after ``timeout`` seconds."""
    assert bridge.proc is not None
    try:
        # In a thread: the fakes live on this loop and must go on answering meanwhile.
        return await asyncio.to_thread(bridge.proc.wait, timeout)
    except subprocess.TimeoutExpired:
        return None


async def test_a_second_process_on_the_same_sqlite_file_is_refused_and_the_first_goes_on(
    tmp_path: Path, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    database = tmp_path / "bridge.db"
    first = write_config(tmp_path, "first", database, gateway, telegram)
    second = write_config(tmp_path, "second", database, gateway, telegram)
    third = write_config(tmp_path, "third", database, gateway, telegram)
    try:
        first.start()
        await first.healthy()

        second.start()
        started = time.monotonic()
        code = await exit_code(second, REFUSED_WITHIN)
        took = time.monotonic() - started
        said = second.log.read_text(errors="replace")
        print(f"second process: exit {code} after {took:.2f} s:\n{said}")
        assert code == 2, said
        assert f"the store {database} is in use by another smsbridge process" in said
        assert "PostgreSQL" in said and "postgresql+asyncpg://" in said
        assert "Traceback" not in said

        # The first never noticed: healthy, and an SMS is posted once, by it alone.
        await first.healthy(timeout=2)
        sms = gateway.receive_sms("+15550300001", "only once")
        assert await deliver(gateway, f"{first.url}/webhooks/sms/office", sms) == 202
        await telegram.wait_for(lambda: "only once" in posted(telegram))
        await asyncio.sleep(1.0)  # time for a second poster to show itself, were there one
        assert Counter(posted(telegram))["only once"] == 1

        # A crash leaves no lock behind: the kernel dropped it with the process.
        first.kill()
        third.start()
        started = time.monotonic()
        await third.healthy()
        print(f"fresh start after kill -9: healthy in {time.monotonic() - started:.2f} s")
        again = gateway.receive_sms("+15550300001", "after the crash")
        assert await deliver(gateway, f"{third.url}/webhooks/sms/office", again) == 202
        await telegram.wait_for(lambda: "after the crash" in posted(telegram))
        await asyncio.sleep(0.5)
        assert Counter(posted(telegram)) == {"only once": 1, "after the crash": 1}
        assert await third.terminate() == 0
    finally:
        for bridge in (first, second, third):
            bridge.kill()


async def test_one_process_cannot_open_a_sqlite_store_twice_at_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    db = Database(url)
    try:
        await db.migrate()
        with pytest.raises(StoreInUse, match="PostgreSQL"):
            Database(url)
        await db.ping()  # the refusal took nothing from the store that holds the file
    finally:
        await db.dispose()
    again = Database(url)  # released by dispose()
    try:
        await again.ping()
    finally:
        await again.dispose()
