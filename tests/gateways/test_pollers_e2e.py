"""Every polling gateway through the real bridge: no row is skipped, none is posted twice.

Each gateway is faked at its HTTP boundary, listing rows the way its vendor documents (after a
unix time, newest first without a filter, from a day, from an ISO time). Rows show up late, out
of order, dated an hour off either way, from a second phone that was offline, and across a
restart. Polls are driven by calling the bridge's own poller, so that "nothing more was
posted" is asserted after a poll that has certainly run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CUSTOMER, GROUP, HOOK_TOKEN, Harness, telegram_section
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from test_every_gateway import webhook_section

from bridge import polling
from bridge.app import Bridge
from bridge.ports import PollsInbound
from bridge.testing.fake_harness import (
    bridge_config,
    free_port,
    idle,
    more_polls,
    polls_ok,
    running_bridge,
)
from connectors import GATEWAYS
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsgate.fake import FakeSmsGate
from connectors.sms.smsgateway24.fake import FakeSmsGateway24
from connectors.sms.smsmobileapi.fake import DEFAULT_DEVICE, FakeSmsMobileApi
from connectors.sms.smstools.fake import INBOX_NUMBER, FakeSmstools
from connectors.sms.twilio.fake import NUMBER, SERVICE_SID, FakeTwilio

HOUR = 3600.0
LOOKBACK = 1.5 * HOUR  # the first poll's reach: rows dated earlier were history at install
POLLING = {
    "name": "gw",
    "receive": "poll",
    "first_poll_lookback": LOOKBACK,
    # One scheduled poll at start; the test runs every later one itself.
    "poll_interval": 3600,
    "status_poll_interval": 3600,
}


@dataclass(frozen=True)
class Kind:
    """How to run one gateway's fake and put a row in its listing."""

    name: str
    open: Callable[[], AbstractAsyncContextManager[Any]]
    settings: Callable[[Any], dict[str, Any]]
    # (fake, text, date in unix seconds, device 0 or 1): an SMS the gateway now lists
    receive: Callable[[Any, str, float, int], object]
    zoned: bool = True  # its dates carry a zone (else the first poll reaches 14 h further)

    def section(self, fake: Any, **extra: Any) -> dict[str, Any]:
        settings = POLLING | self.settings(fake) | extra
        return {"type": fake.kind, "base_url": fake.base_url} | fake.credentials() | settings


KINDS = [
    Kind(
        "smsmobileapi",
        FakeSmsMobileApi,
        lambda _: {},
        lambda fake, text, at, device: fake.receive_sms(
            CUSTOMER, text, timestamp_unix=int(at), device=(DEFAULT_DEVICE, "phone-2")[device]
        ),
    ),
    Kind(
        "smsgateway24",
        FakeSmsGateway24,
        lambda _: {"devices": [{"device_id": 260}, {"device_id": 261}]},
        lambda fake, text, at, device: fake.receive_sms(
            CUSTOMER, text, device_id=(260, 261)[device], created=at
        ),
    ),
    Kind(
        "smstools",
        FakeSmstools,
        lambda _: {"sender": "Shop"},
        lambda fake, text, at, device: fake.receive_sms(
            CUSTOMER, text, at=at, receiver=(INBOX_NUMBER, "32460000002")[device]
        ),
        zoned=False,
    ),
    Kind(
        "smsgate-local",
        lambda: FakeSmsGate("local"),
        lambda _: {"region": "US"},
        lambda fake, text, at, device: fake.receive_sms(
            CUSTOMER, text, sim=device + 1, at=datetime.fromtimestamp(at, UTC)
        ),
    ),
    Kind(
        "twilio",
        FakeTwilio,
        lambda _: {"messaging_service_sid": SERVICE_SID},
        lambda fake, text, at, device: fake.receive_sms(
            CUSTOMER, text, at=at, to=(NUMBER, "+15017122662")[device], service=True
        ),
    ),
]


def texts(telegram: FakeTelegram) -> Counter[str]:
    """How often each SMS text reached the chat."""
    return Counter(m.get("text") or "" for m in telegram.sent_messages(GROUP))


@asynccontextmanager
async def polled(config: Any) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A running bridge, once its scheduled first poll is done; yields "poll once more"."""
    async with running_bridge(config) as bridge:
        [poller] = bridge.pollers
        await wait(lambda: polls_ok(bridge, "gw") >= 1 or poller.last_error is not None)
        assert poller.last_error is None, poller.last_error
        await idle(bridge)

        async def poll() -> None:
            await poller.poll_inbound()
            assert poller.last_error is None, poller.last_error
            await idle(bridge)  # what the poll found is in the chat now

        yield poll


async def wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
async def test_every_row_is_bridged_once_whatever_its_date_order_or_phone(
    kind: Kind, tmp_path: Path, telegram: FakeTelegram
) -> None:
    async with kind.open() as fake:
        config = bridge_config(tmp_path, kind.section(fake), telegram_section(telegram))
        now = time.time()
        kind.receive(fake, "history from yesterday", now - 30 * HOUR, 0)
        if kind.zoned:
            kind.receive(fake, "history from two hours ago", now - 2 * HOUR, 0)
        kind.receive(fake, "recent before install", now - 600, 0)
        expected: Counter[str] = Counter()

        async def then(poll: Callable[[], Awaitable[None]], *new: str) -> None:
            await poll()
            expected.update(new)
            assert texts(telegram) == expected

        async with polled(config) as poll:
            await then(poll, "recent before install")
            kind.receive(fake, "newer", time.time(), 0)
            await then(poll, "newer")
            # Listed after "newer" was bridged, dated before it.
            kind.receive(fake, "late", time.time() - 300, 0)
            await then(poll, "late")
            # Listed in the opposite order of their dates.
            kind.receive(fake, "second of two", time.time() - 30, 0)
            kind.receive(fake, "first of two", time.time() - 90, 0)
            await then(poll, "first of two", "second of two")
            # A phone clock an hour behind, then one an hour ahead; later SMS still come.
            kind.receive(fake, "clock behind", time.time() - HOUR, 0)
            await then(poll, "clock behind")
            kind.receive(fake, "clock ahead", time.time() + HOUR, 0)
            await then(poll, "clock ahead")
            kind.receive(fake, "after the one ahead", time.time(), 0)
            await then(poll, "after the one ahead")
            # A second phone back online with what it received while offline.
            kind.receive(fake, "offline phone, first", time.time() - 1200, 1)
            kind.receive(fake, "offline phone, second", time.time() - 900, 1)
            await then(poll, "offline phone, first", "offline phone, second")
            await then(poll)  # the same listing again: nothing new
        kind.receive(fake, "while stopped", time.time(), 0)
        kind.receive(fake, "while stopped, dated earlier", time.time() - 600, 1)
        async with polled(config) as poll:
            # The restart's own first poll brought both; this one brings nothing more.
            expected.update(["while stopped", "while stopped, dated earlier"])
            assert texts(telegram) == expected
            kind.receive(fake, "after the restart", time.time(), 0)
            await then(poll, "after the restart")
            await then(poll)
        assert not any(text.startswith("history") for text in texts(telegram))
        assert telegram.violations == []


@pytest.mark.parametrize(
    ("configured", "actual"),
    [
        ("Europe/Brussels", "UTC"),
        ("America/New_York", "UTC"),
        ("UTC", "America/New_York"),
        ("UTC", "Asia/Tokyo"),
    ],
)
async def test_smstools_with_a_wrong_timezone_loses_nothing(
    configured: str, actual: str, tmp_path: Path, telegram: FakeTelegram
) -> None:
    async with FakeSmstools(timezone=actual) as fake:
        [kind] = [k for k in KINDS if k.name == "smstools"]
        section = kind.section(fake, timezone=configured)
        config = bridge_config(tmp_path, section, telegram_section(telegram))
        now = time.time()
        fake.receive_sms(CUSTOMER, "history from two days ago", at=now - 48 * HOUR)
        fake.receive_sms(CUSTOMER, "recent before install", at=now - 600)
        async with polled(config) as poll:
            assert texts(telegram) == Counter(["recent before install"])
            fake.receive_sms(CUSTOMER, "after start", at=time.time())
            await poll()
            fake.receive_sms(CUSTOMER, "after start, listed late", at=time.time() - 120)
            await poll()
            await poll()
        assert texts(telegram) == Counter(
            ["recent before install", "after start", "after start, listed late"]
        )


# the safety net under webhooks ---------------------------------------------------------------


def recovered(exposition: str, gateway: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if (
                sample.name == "smsbridge_safety_net_recovered_total"
                and sample.labels.get("gateway") == gateway
            ):
                return sample.value
    return 0.0


# (fake, row, webhook URL): the gateway calls the bridge about that row.
Deliver = Callable[[Any, Any, str], Awaitable[httpx.Response]]
HOOKS: dict[str, Deliver] = {
    "smsmobileapi": lambda fake, row, url: fake.deliver_plain_webhook(url, row),
    "smsgateway24": lambda fake, row, url: fake.deliver_incoming(url, row),
    "twilio": lambda fake, row, url: fake.deliver_inbound(url, row),
}


async def test_every_registered_gateway_that_lists_is_covered_here() -> None:
    """The registry decides what is tested: a new gateway that lists what it received gets
    the tests above, and the safety-net one if its config lets the safety net run."""
    lists: set[str] = set()
    takes_safety_net: set[str] = set()
    for name, kind in GATEWAYS.items():
        async with kind.fake() as fake:
            section = webhook_section(name, fake)
            gateway = kind.factory(kind.config.model_validate(section), "http://127.0.0.1:9/x")
            if isinstance(gateway, PollsInbound):
                lists.add(name)
                try:
                    kind.config.model_validate(section | {"safety_poll_interval": 600})
                    takes_safety_net.add(name)
                except ValidationError:
                    pass  # refused on purpose (its webhook ids cannot match its listing)
    assert lists <= {k.name.split("-")[0] for k in KINDS}
    assert takes_safety_net <= set(HOOKS)


@pytest.mark.parametrize("kind", [k for k in KINDS if k.name in HOOKS], ids=list(HOOKS))
async def test_the_safety_net_bridges_a_dropped_webhook_once_and_counts_it(
    kind: Kind, tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.polling")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    deliver = HOOKS[kind.name]
    async with kind.open() as fake:
        section = kind.section(
            fake,
            receive="webhook",
            webhook_token=HOOK_TOKEN,
            safety_poll_interval=0.2,
            safety_poll_window=HOUR,
        )
        chat = telegram_section(telegram)
        config = bridge_config(tmp_path, section, chat, port=port, public_url=public)
        hook = f"{public}/webhooks/sms/gw/{HOOK_TOKEN}"
        async with running_bridge(config) as bridge:
            assert "safety:gw" in bridge.scheduler.jobs()
            assert "poll:gw" not in bridge.scheduler.jobs()

            async def scrape() -> float:
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"{public}/metrics")
                assert response.status_code == 200
                return recovered(response.text, "gw")

            delivered = kind.receive(fake, "delivered by webhook", time.time(), 0)
            assert (await deliver(fake, delivered, hook)).is_success
            kind.receive(fake, "webhook never sent", time.time() - 300, 0)  # listed only
            await telegram.wait_for(
                lambda: texts(telegram) == Counter(["delivered by webhook", "webhook never sent"])
            )
            assert await scrape() == 1
            [warning] = [r for r in caplog.records if "safety-net" in r.getMessage()]
            assert warning.levelno == logging.WARNING
            assert warning.getMessage().startswith("gw: ")

            # A webhook that does come, while safety polls run, is neither re-posted nor counted.
            another = kind.receive(fake, "another by webhook", time.time(), 1)
            assert (await deliver(fake, another, hook)).is_success
            await more_polls(bridge, "gw", count=3)
            assert texts(telegram) == Counter(
                ["delivered by webhook", "webhook never sent", "another by webhook"]
            )
            assert await scrape() == 1
            assert len([r for r in caplog.records if "safety-net" in r.getMessage()]) == 1


async def test_the_safety_net_waits_for_a_webhook_that_may_still_come(
    start_bridge: Callable[..., Awaitable[Harness[FakeSmsMobileApi]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(polling, "WEBHOOK_GRACE", 2.0)  # a minute, in the real thing
    # Driven by hand: the scheduled safety poll runs once at start, then every hour.
    harness = await start_bridge(gateway={"receive": "webhook", "safety_poll_interval": 3600})
    bridge: Bridge = harness.bridge
    [poller] = bridge.pollers
    await wait(lambda: polls_ok(bridge, "office") >= 1)
    sms = harness.gateway.receive_sms(CUSTOMER, "webhook on its way")
    await poller.safety_poll()  # just arrived: its webhook is given time
    await idle(bridge)
    assert harness.posts() == []
    response = await harness.gateway.deliver_received_v2(harness.signed_hook, sms)
    assert response.status_code == 202
    await harness.telegram.wait_for(lambda: harness.posts() == ["webhook on its way"])
    await poller.safety_poll()
    await idle(bridge)
    assert harness.posts() == ["webhook on its way"]
    assert bridge.metrics.registry.get_sample_value(
        "smsbridge_safety_net_recovered_total", {"gateway": "office"}
    ) in (None, 0.0)
    # Rounds in quick succession still give a webhook its grace, counted from when the row
    # was first listed; once it has passed, the row is not on its way after all.
    harness.gateway.receive_sms(CUSTOMER, "webhook lost")
    listed = time.monotonic()
    for _ in range(2):
        await poller.safety_poll()
        await idle(bridge)
        assert harness.posts() == ["webhook on its way"]
    await asyncio.sleep(max(0.0, listed + 2.5 - time.monotonic()))  # past the grace
    await poller.safety_poll()
    await idle(bridge)
    assert harness.posts() == ["webhook on its way", "webhook lost"]


@pytest.mark.parametrize(
    ("settings", "jobs"),
    [
        ({"receive": "webhook", "safety_poll_interval": 0}, set()),
        ({"receive": "webhook"}, {"safety:office"}),  # on by default
        ({"receive": "both"}, {"poll:office"}),  # polls anyway: no safety net on top
        ({"receive": "poll"}, {"poll:office"}),
    ],
)
async def test_which_listing_jobs_run(
    start_bridge: Callable[..., Awaitable[Harness[FakeSmsMobileApi]]],
    settings: dict[str, Any],
    jobs: set[str],
) -> None:
    harness = await start_bridge(gateway=settings)
    listing = {j for j in harness.bridge.scheduler.jobs() if j.split(":")[0] in ("poll", "safety")}
    assert listing == jobs
