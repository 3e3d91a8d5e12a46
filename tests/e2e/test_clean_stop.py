"""SIGTERM stops at once: calls in flight finish, queued work stays stored for the next start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import GROUP, Harness, config_dict, telegram_section
from starlette.requests import Request
from starlette.responses import Response
from test_kill_restart import BridgeProcess, free_port, posted

from connectors.chat.telegram.fake import FakeLimits, FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

BACKLOG = 200
NUMBERS = [f"+1555030000{i}" for i in range(4)]
POLL_LATENCY = 3.0  # a slow gateway: the poll SIGTERM meets is still waiting for its answer
STOP_WITHIN = 10.0  # what Docker and systemd give before they kill


class SlowGateway(FakeSmsMobileApi):
    """Knows how many requests it is still answering, so a test can stop a poll in flight."""

    in_flight = 0

    async def _handle(self, request: Request) -> Response:
        self.in_flight += 1
        try:
            return await super()._handle(request)
        finally:
            self.in_flight -= 1


def write_config(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


async def test_sigterm_with_a_paced_backlog_and_a_poll_in_flight_exits_0_and_loses_nothing(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    async with SlowGateway() as gateway, FakeTelegram(limits=FakeLimits()) as telegram:
        telegram.add_forum(GROUP, "Support")
        texts = [f"backlog #{i:03d}" for i in range(BACKLOG)]
        for i, text in enumerate(texts):
            gateway.receive_sms(NUMBERS[i % len(NUMBERS)], text)
        data = config_dict(
            f"sqlite:///{tmp_path / 'bridge.db'}",
            gateway,
            telegram,
            server={"host": "127.0.0.1", "port": port},
            gateway={"receive": "poll", "poll_interval": 0.5},
        )
        # Telegram's limits, with the group's minute window full after 6 messages (4 topics,
        # 2 posts) rather than 20, to keep the test short: the rest waits most of a minute.
        data["chats"][0]["pacing"] = {"group": {"messages": 6, "seconds": 60}}
        write_config(config, data)
        bridge = BridgeProcess(config, tmp_path / "bridge.log", port)
        try:
            bridge.start()
            await bridge.healthy()
            # The first poll stored the lot; the chat worker posts them at Telegram's pace.
            await telegram.wait_for(lambda: len(posted(telegram)) >= 2, timeout=20)
            gateway.latency = POLL_LATENCY
            await gateway.wait_for(lambda: gateway.in_flight > 0, timeout=5)
            assert bridge.proc is not None
            stopped_at = time.monotonic()
            os.kill(bridge.proc.pid, signal.SIGTERM)
            try:
                # In a thread: the fakes live on this loop and must answer the calls in flight.
                code = await asyncio.to_thread(bridge.proc.wait, STOP_WITHIN + 5)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"no exit after SIGTERM:\n{bridge.tail()}") from None
            took = time.monotonic() - stopped_at
            print(f"exit {code} {took:.1f} s after SIGTERM, {len(posted(telegram))} posted")
            assert code == 0, bridge.tail()
            assert took < STOP_WITHIN, bridge.tail()
            first_run = bridge.log.read_text(errors="replace")
            assert "Traceback" not in first_run, first_run
            assert not [line for line in first_run.splitlines() if " ERROR " in line], first_run
            assert "smsbridge stopped" in first_run
            left = BACKLOG - len(posted(telegram))
            assert left > BACKLOG / 2, "the backlog was meant to outlast the stop"
            bridge.kill()  # closes the log file of the stopped process

            # The next start posts what was left, each once; nothing was lost or doubled.
            gateway.latency = 0.0
            telegram.limits = FakeLimits.off()
            data["chats"][0] = telegram_section(telegram)
            write_config(config, data)
            bridge.start()
            await bridge.healthy()
            await telegram.wait_for(lambda: len(posted(telegram)) >= BACKLOG, timeout=60)
            backlog = await bridge.backlog()
            deadline = time.monotonic() + 10
            while any(backlog["chat_jobs"].values()):
                assert time.monotonic() < deadline, f"never idle: {backlog}"
                await asyncio.sleep(0.05)
                backlog = await bridge.backlog()
        finally:
            bridge.kill()
            print(bridge.tail())
        assert Counter(posted(telegram)) == Counter(texts)
        assert len([t for t in telegram.topics(GROUP) if not t.deleted]) == len(NUMBERS)
        assert telegram.violations == []


async def test_a_stop_between_opening_a_thread_and_posting_in_it_keeps_the_thread(
    start_bridge: Callable[..., Any], telegram: FakeTelegram
) -> None:
    """The topic takes the chat's one slot of the minute; its post would wait for the next.
    The stop does not wait, and the next start posts into that topic instead of a new one."""
    slow = {"pacing": {"chat": {"messages": 1, "seconds": 60}}}
    harness: Harness = await start_bridge(chat=slow)
    await harness.sms("hello before the stop")
    await telegram.wait_for(lambda: telegram.count("createForumTopic") == 1)
    began = time.monotonic()
    await harness.bridge.stop()
    assert time.monotonic() - began < STOP_WITHIN
    assert harness.posts() == []

    again: Harness = await start_bridge()
    await telegram.wait_for(lambda: again.posts() == ["hello before the stop"])
    [topic] = again.topics()
    assert again.posts(topic.thread_id) == ["hello before the stop"]
    assert telegram.count("createForumTopic") == 1
