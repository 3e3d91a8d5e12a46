"""The gateway duty's start: a webhook registration that hangs never holds up the lease round."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from bridge.confbase import GatewayConfigBase
from bridge.metrics import Metrics
from bridge.polling import REGISTER_WAIT, Poller
from bridge.ports import SmsGateway
from bridge.router import Router
from bridge.scheduler import Scheduler
from bridge.store.sql import SqlStore


class HangingPhone:
    """Registers webhooks at a phone that answers only when the call times out."""

    name = "office"

    def __init__(self) -> None:
        self.registering = asyncio.Event()
        self.cancelled = False

    async def register_webhooks(self) -> None:
        self.registering.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def stop_registering(self) -> None:
        return None


async def test_a_hanging_registration_goes_on_in_the_background_until_given_up() -> None:
    phone = HangingPhone()
    config = cast(
        Any, type("Config", (), {"polls": False, "safety_poll_interval": 0, "receive": "webhook"})
    )()
    poller = Poller(
        cast(SmsGateway, phone),
        cast(GatewayConfigBase, config),
        cast(SqlStore, None),
        cast(Router, None),
        Metrics(),
    )
    scheduler = Scheduler()
    started = time.monotonic()
    await asyncio.wait_for(poller.take(scheduler), REGISTER_WAIT + 1.0)
    assert time.monotonic() - started < REGISTER_WAIT + 0.5
    assert phone.registering.is_set() and not phone.cancelled
    assert poller.health()["state"] == "ok"
    await poller.give_up(scheduler)
    assert phone.cancelled
