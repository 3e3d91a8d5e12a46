"""The gateway watchdog through the real bridge and the fakes: one alert and one recovery per
incident in the ops thread, never one per check, and none repeated across a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from conftest import GROUP, Harness

from bridge.app import Bridge
from bridge.config import Config
from bridge.store.records import OutboundRequest
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

THREAD = "Gateway health"
CHECK = 0.1  # watch_interval: a few checks pass while the tests wait
# down_after above the 1 s resolution of the fake's last_seen, below the waits here
FAST = {"watch_interval": CHECK, "down_after": 2, "poll_interval": 0.2}


class Clock:
    """The watchdog's clock: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def run(
    make_config: Callable[..., Config],
    gateway: FakeSmsMobileApi,
    telegram: FakeTelegram,
    clock: Clock,
) -> AsyncIterator[Callable[..., Any]]:
    """``await run(**gateway settings)``: a bridge watching the fake, alerting into the ops
    thread of the support chat; stopped after the test (``stop`` stops it early)."""
    running: list[Bridge] = []

    async def start(store_url: str | None = None, **settings: Any) -> Harness[FakeSmsMobileApi]:
        store = {"store": {"url": store_url, "lease_ttl": 2}} if store_url else {}
        config = make_config(
            store_url,
            gateway={**FAST, **settings},
            ops={"chat": "support", "thread": THREAD},
            **store,
        )
        bridge = Bridge(config, clock=clock)
        await bridge.start()
        running.append(bridge)
        return Harness(bridge, gateway, telegram)

    yield start
    for bridge in reversed(running):
        await bridge.stop()


def alerts(telegram: FakeTelegram) -> list[str]:
    """What was posted in the ops thread, in order."""
    topics = [t for t in telegram.topics(GROUP) if t.name == THREAD and not t.deleted]
    if not topics:
        return []
    assert len(topics) == 1, "the ops thread is opened once"
    return [m.get("text") or "" for m in telegram.sent_messages(GROUP, topics[0].thread_id)]


async def posted(telegram: FakeTelegram, count: int, timeout: float = 5.0) -> list[str]:  # noqa: ASYNC109
    """Waits for ``count`` posts in the ops thread, then a dozen more checks: still ``count``."""
    await telegram.wait_for(lambda: len(alerts(telegram)) >= count, timeout)
    await asyncio.sleep(12 * CHECK)
    found = alerts(telegram)
    assert len(found) == count, found
    return found


async def healthz(harness: Harness[Any]) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        response = await client.get(f"{harness.base}/healthz")
        return response.status_code, response.json()


async def metrics(harness: Harness[Any]) -> str:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        return (await client.get(f"{harness.base}/metrics")).text


async def test_a_phone_going_offline_and_back_is_one_alert_and_one_recovery(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    harness = await run()
    await asyncio.sleep(5 * CHECK)
    assert alerts(telegram) == []  # an online phone with a full battery is no news
    gateway.mobiles[0].online = False
    [alert] = await posted(telegram, 1)
    assert "Gateway office: phone offline" in alert and "office-phone-1" in alert
    status, body = await healthz(harness)
    watched = body["gateways"]["office"]["watchdog"]
    assert status == 200  # a phone offline is an incident, not an instance to take out
    assert watched["state"] == "incident" and set(watched["incidents"]) == {"offline"}
    assert watched["devices"][0]["online"] is False and watched["devices"][0]["battery"] == 87
    text = await metrics(harness)
    assert 'smsbridge_gateway_incident{gateway="office",kind="offline"} 1.0' in text
    assert 'smsbridge_gateway_healthy{gateway="office"} 0.0' in text
    battery = 'smsbridge_gateway_battery_percent{device="office-phone-1",gateway="office"}'
    assert f"{battery} 87.0" in text

    gateway.mobiles[0].online = True
    first, recovered = await posted(telegram, 2)
    assert first == alert
    assert "Gateway office: phone offline is over" in recovered
    _, body = await healthz(harness)
    assert body["gateways"]["office"]["watchdog"]["state"] == "ok"
    text = await metrics(harness)
    assert 'smsbridge_gateway_healthy{gateway="office"} 1.0' in text
    for event in ("alert", "recovered"):
        line = f'smsbridge_watchdog_alerts_total{{event="{event}",gateway="office",kind="offline"}}'
        assert f"{line} 1.0" in text


async def test_a_phone_not_seen_for_down_after_is_offline(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    gateway.mobiles[0].last_seen = time.time() - 3600  # says nothing of "online" but this
    await run()
    [alert] = await posted(telegram, 1)
    assert "office-phone-1 last seen 60 min ago" in alert


async def test_a_low_battery_alerts_once_and_recovers_once(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    await run(battery_low=20)
    gateway.mobiles[0].battery = 9
    [alert] = await posted(telegram, 1)
    assert "battery low" in alert and "office-phone-1 at 9% (alert under 20%)" in alert
    gateway.mobiles[0].battery = 21  # above the threshold, not above its margin: still low
    await posted(telegram, 1)
    gateway.mobiles[0].battery = 60
    _, recovered = await posted(telegram, 2)
    assert "battery low is over" in recovered


async def test_silence_is_an_incident_only_where_it_is_set(
    run: Callable[..., Any], telegram: FakeTelegram, clock: Clock
) -> None:
    # The moved clock ages the phone's last_seen too: only silence is under test here.
    harness = await run(silence_after=600, down_after=86400)
    await harness.sms("an SMS before the quiet")
    await harness.telegram.wait_for(lambda: "an SMS before the quiet" in harness.posts())
    clock.offset = 300  # half the window
    await asyncio.sleep(5 * CHECK)
    assert alerts(telegram) == []
    clock.offset = 900
    [alert] = await posted(telegram, 1)
    assert "Gateway office: no inbound SMS. No SMS received for 15 min" in alert
    _, body = await healthz(harness)
    assert body["gateways"]["office"]["watchdog"]["last_inbound"] is not None
    clock.offset = 0  # time goes on to the next SMS
    await harness.sms("the phone speaks again")
    _, recovered = await posted(telegram, 2)
    assert "no inbound SMS is over" in recovered
    text = await metrics(harness)
    assert "smsbridge_gateway_last_inbound_timestamp_seconds" in text


async def test_silence_is_off_by_default(
    run: Callable[..., Any], telegram: FakeTelegram, clock: Clock
) -> None:
    harness = await run(down_after=6 * 86400)
    clock.offset = 5 * 86400
    await asyncio.sleep(8 * CHECK)
    assert alerts(telegram) == []
    _, body = await healthz(harness)
    assert body["gateways"]["office"]["watchdog"]["incidents"] == {}


async def test_an_api_outage_longer_than_down_after_alerts_and_makes_healthz_503(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    harness = await run()
    gateway.fail_next("/gateway/mobile/list/", status=500, count=10_000)
    gateway.fail_next("/getsms/", status=500, count=10_000)
    [alert] = await posted(telegram, 1)
    assert "Gateway office: gateway API failing. Failing for" in alert and "HTTP 500" in alert
    status, body = await healthz(harness)
    assert status == 503 and body["gateways"]["office"]["state"] == "down"
    assert set(body["gateways"]["office"]["watchdog"]["incidents"]) == {"api_down"}

    gateway.reset()  # the vendor is back
    _, recovered = await posted(telegram, 2)
    assert "gateway API failing is over" in recovered
    status, body = await healthz(harness)
    # Up again; the one safety poll that failed leaves its record ("degraded") until the next.
    assert status == 200 and body["gateways"]["office"]["state"] != "down"
    assert body["gateways"]["office"]["watchdog"]["incidents"] == {}


async def test_a_short_api_hiccup_is_no_incident(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    await run(down_after=5)
    gateway.fail_next("/gateway/mobile/list/", status=500, count=3)
    await gateway.wait_for(
        lambda: sum(r.status == 500 for r in gateway.requests) == 3 and len(gateway.requests) > 5
    )
    await asyncio.sleep(5 * CHECK)
    assert alerts(telegram) == []


async def test_sends_failing_in_a_row_alert_once_and_a_success_recovers(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    harness = await run(sends_failing_after=3)
    assert harness.bridge.store is not None
    outbound = harness.bridge.store.outbound

    async def send(index: int) -> None:
        await outbound.enqueue(
            OutboundRequest(
                "office", "+15557654321", f"hello {index}", "support", f"m{index}", "Sam"
            )
        )

    gateway.fail_next("/sendsms/", status=400, count=3)  # refused: failed at once, no retry
    for index in range(2):
        await send(index)
    await gateway.wait_for(lambda: sum(r.path == "/sendsms/" for r in gateway.requests) == 2)
    await asyncio.sleep(5 * CHECK)
    assert alerts(telegram) == []  # two in a row are not three
    await send(2)
    [alert] = await posted(telegram, 1)
    assert "Gateway office: sends failing. The last 3 SMS sent through it failed." in alert
    await send(3)  # this one goes through
    _, recovered = await posted(telegram, 2)
    assert "sends failing is over" in recovered


async def test_a_restart_during_an_incident_does_not_alert_again(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    first = await run()
    gateway.mobiles[0].online = False
    [alert] = await posted(telegram, 1)
    await first.bridge.stop()

    second = await run()  # same store: the incident is still open there
    await gateway.wait_for(lambda: len(gateway.requests) > 20)
    assert await posted(telegram, 1) == [alert]
    _, body = await healthz(second)
    assert set(body["gateways"]["office"]["watchdog"]["incidents"]) == {"offline"}

    gateway.mobiles[0].online = True
    _, recovered = await posted(telegram, 2)
    assert "phone offline is over" in recovered


async def test_without_an_ops_chat_the_watchdog_only_reports(
    start_bridge: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    gateway.mobiles[0].battery = 3
    harness: Harness[Any] = await start_bridge(gateway=FAST)

    async def low() -> bool:
        _, body = await healthz(harness)
        return "battery_low" in body["gateways"]["office"]["watchdog"]["incidents"]

    deadline = time.monotonic() + 5
    while not await low():
        assert time.monotonic() < deadline
        await asyncio.sleep(CHECK)
    await harness.idle()
    assert alerts(telegram) == [] and harness.posts() == []


async def test_two_instances_alert_once_and_a_takeover_does_not_alert_again(
    run: Callable[..., Any], gateway: FakeSmsMobileApi, telegram: FakeTelegram, pg_url: str
) -> None:
    first = await run(pg_url)
    second = await run(pg_url)
    gateway.mobiles[0].online = False
    [alert] = await posted(telegram, 1)
    bridges = {h.bridge.watchdogs["office"].active: h for h in (first, second)}
    owner, standby = bridges[True], bridges[False]  # exactly one watches
    _, body = await healthz(standby)
    watched = body["gateways"]["office"]["watchdog"]
    assert watched["state"] == "standby" and set(watched["incidents"]) == {"offline"}

    await owner.bridge.stop()  # a clean stop hands the duty over at once
    await gateway.wait_for(lambda: standby.bridge.watchdogs["office"].active)
    assert await posted(telegram, 1) == [alert]
    gateway.mobiles[0].online = True
    _, recovered = await posted(telegram, 2)
    assert "phone offline is over" in recovered
