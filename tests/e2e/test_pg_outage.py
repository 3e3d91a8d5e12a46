"""PostgreSQL restarted under load: 503s while it is gone, back by itself, nothing lost or doubled.

Two real bridge processes share one database through a proxy the test cuts for a few seconds
(every connection dropped, new ones refused), while a gateway keeps delivering webhooks to
both, and delivers again whatever was not acknowledged, as real gateways do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import config_dict
from pgproxy import PgProxy
from processes import BridgeProcess
from test_health import metric
from test_kill_restart import posted

from bridge.testing.fake_harness import free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi, ReceivedSms

INSTANCES = 2
CUT_FOR = 3.0  # seconds without a database
LOAD_BEFORE = 1.5  # seconds of webhooks before the cut, and after the restore
SMS_EVERY = 0.05  # a new SMS this often, over both instances
RETRY_AFTER = 0.25  # how soon the gateway delivers again what was not acknowledged
ANSWER_WITHIN = 5.0  # no webhook may hang longer than this, database or not
BACK_WITHIN = 10.0  # both instances healthy again this soon after the restore
NUMBERS = [f"+1555040000{i}" for i in range(6)]
TRACEBACKS = 10  # at most this many per instance: an outage is reported, not flooded


@dataclasses.dataclass
class Attempt:
    instance: int
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all (refused, reset, timed out)


class Gateway:
    """Delivers each SMS, round robin over the instances, until one acknowledges it (2xx)."""

    def __init__(self, fake: FakeSmsMobileApi, hooks: list[str]) -> None:
        self.fake = fake
        self.hooks = hooks
        self.attempts: list[Attempt] = []
        self.acked: list[ReceivedSms] = []
        self._next = 0

    async def deliver(self, sms: ReceivedSms) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            instance = self._next % len(self.hooks)
            self._next += 1
            started = time.monotonic()
            try:
                answer = await asyncio.wait_for(
                    self.fake.deliver_received_v2(self.hooks[instance], sms), ANSWER_WITHIN * 2
                )
                status: int | None = answer.status_code
            except (httpx.HTTPError, TimeoutError):
                status = None
            self.attempts.append(Attempt(instance, started, time.monotonic(), status))
            if status is not None and 200 <= status < 300:
                self.acked.append(sms)
                return
            await asyncio.sleep(RETRY_AFTER)
        raise AssertionError(f"{sms.message!r} never acknowledged")


async def health(client: httpx.AsyncClient, bridge: BridgeProcess) -> tuple[int, str]:
    """The /healthz status code and what it says of the store."""
    answer = await client.get(f"{bridge.url}/healthz")
    return answer.status_code, answer.json()["store"]["state"]


@pytest.mark.parametrize(
    "lease_ttl",
    [
        pytest.param(10.0, id="cut-shorter-than-leases"),
        # The owners stop their duties during the cut; after it, someone claims them again.
        pytest.param(2.0, id="cut-outlasts-leases"),
    ],
)
async def test_postgresql_restarted_under_load_answers_503_then_recovers_losing_nothing(
    tmp_path: Path,
    pg_url: str,
    gateway: FakeSmsMobileApi,
    telegram: FakeTelegram,
    lease_ttl: float,
) -> None:
    async with PgProxy() as proxy:
        bridges: list[BridgeProcess] = []
        for index in range(INSTANCES):
            port = free_port()
            data = config_dict(
                proxy.url(pg_url), gateway, telegram, server={"host": "127.0.0.1", "port": port}
            )
            data["store"]["lease_ttl"] = lease_ttl
            config = tmp_path / f"bridge{index}.yaml"
            config.write_text(yaml.safe_dump(data), encoding="utf-8")
            bridges.append(BridgeProcess(config, tmp_path / f"bridge{index}.log", port))
        sender = Gateway(gateway, [f"{b.url}/webhooks/sms/office" for b in bridges])
        deliveries: list[asyncio.Task[None]] = []
        serial = 0

        async def load(seconds: float) -> None:
            nonlocal serial
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                sms = gateway.receive_sms(NUMBERS[serial % len(NUMBERS)], f"load #{serial:03d}")
                serial += 1
                deliveries.append(asyncio.create_task(sender.deliver(sms)))
                await asyncio.sleep(SMS_EVERY)

        try:
            for bridge in bridges:
                bridge.start()
            for bridge in bridges:
                await bridge.healthy()

            await load(LOAD_BEFORE)
            await proxy.cut()
            cut_at = time.monotonic()
            async with httpx.AsyncClient(trust_env=False, timeout=ANSWER_WITHIN) as client:
                during = asyncio.create_task(load(CUT_FOR))
                await asyncio.sleep(CUT_FOR / 2)
                down = [await health(client, b) for b in bridges]
                await during
                restored_at = time.monotonic()
                await proxy.restore()
                load_after = asyncio.create_task(load(LOAD_BEFORE))

                # Both come back by themselves: no restart, no help.
                for bridge in bridges:
                    await bridge.healthy(timeout=BACK_WITHIN)
                back_after = time.monotonic() - restored_at
                await load_after
                await asyncio.gather(*deliveries)
                last_ack = time.monotonic()
                texts = {sms.message for sms in sender.acked}
                await telegram.wait_for(lambda: texts <= set(posted(telegram)), timeout=30)
                drained_after = time.monotonic() - last_ack
                await asyncio.sleep(1.0)  # time for a repeat to show itself, were there one
                scraped = [(await client.get(f"{b.url}/metrics")).text for b in bridges]
        finally:
            for bridge in bridges:
                bridge.kill()
        logs = [bridge.log.read_text(errors="replace") for bridge in bridges]

    in_cut = [a for a in sender.attempts if a.started >= cut_at and a.ended <= restored_at]
    answers = Counter(a.status for a in sender.attempts)
    slowest = max(a.ended - a.started for a in sender.attempts)
    print(
        f"{serial} SMS, {len(sender.attempts)} webhook attempts {dict(answers)}, "
        f"{len(in_cut)} wholly inside the {CUT_FOR:.0f} s cut; slowest answer {slowest:.2f} s; "
        f"healthy again {back_after:.2f} s after the restore, all posted "
        f"{drained_after:.2f} s after the last acknowledgement; health in the cut: {down}; "
        f"tracebacks logged: {[log.count('Traceback') for log in logs]}"
    )
    # While the database is gone: 503 for every webhook, so the gateway delivers it again;
    # never a 2xx for something that was not stored, never another error, never a hang.
    assert in_cut, "no webhook fell inside the cut: it tested nothing"
    assert {a.status for a in in_cut} == {503}, Counter(a.status for a in in_cut)
    assert set(answers) <= {200, 202, 503}, answers
    assert slowest < ANSWER_WITHIN, slowest
    assert down == [(503, "down")] * INSTANCES, down
    # Each instance counts its 503s in /metrics, and logs the outage without flooding.
    for index, (log, text) in enumerate(zip(logs, scraped, strict=True)):
        refused = sum(a.status == 503 for a in sender.attempts if a.instance == index)
        counted = metric(text, "smsbridge_webhook_rejected_total", endpoint="sms", status="503")
        assert counted == refused, (index, counted, refused)
        assert log.count("Traceback") <= TRACEBACKS, log[-3000:]
        assert "answered 503" in log
    # Every SMS was acknowledged in the end, and each is in Telegram exactly once.
    assert len(sender.acked) == serial
    shown = Counter(posted(telegram))
    assert {sms.message: shown[sms.message] for sms in sender.acked} == {
        sms.message: 1 for sms in sender.acked
    }
    assert sum(shown.values()) == serial
    assert proxy.connections > 0
