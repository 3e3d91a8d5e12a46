"""Our webhooks on an SMSGate phone or account: one per event under a stable id, registered at
start and, while the phone is offline, again in the background until it answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

from bridge.errors import DeliveryError, Retryable
from connectors.sms.smsgate import webhooks as hooks
from connectors.sms.smsgate.config import SmsGateConfig
from connectors.sms.smsgate.inbox import Call

log = logging.getLogger(__name__)


def webhook_id(gateway: str, event: str) -> str:
    """A stable id (≤ 36 chars) per gateway and event: registering again replaces, never adds."""
    digest = hashlib.sha256(gateway.encode()).hexdigest()[:10]
    return f"smsbridge-{digest}-{event.replace(':', '-')}"


class Registration:
    """Registers this gateway's webhooks at ``public_url`` through the gateway's API calls."""

    def __init__(self, config: SmsGateConfig, public_url: str | None, call: Call) -> None:
        self.config = config
        self.name = config.name
        self._public_url = public_url
        self._call = call
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register now; refused for good raises, an unreachable phone is retried later."""
        try:
            await self.register()
        except Retryable as exc:
            # A phone that is offline now must not stop the bridge: keep trying.
            log.warning("%s: webhooks not registered yet: %s", self.name, exc.reason)
            self._task = asyncio.create_task(self._register_later())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _register_later(self) -> None:
        delay = 10.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self.register()
            except DeliveryError as exc:
                log.warning("%s: webhooks not registered yet: %s", self.name, exc.reason)
                delay = min(delay * 2, 300.0)
            else:
                log.info("%s: webhooks registered", self.name)
                return

    async def register(self) -> None:
        """One webhook per event, with stable ids (``POST /webhooks`` replaces by id)."""
        assert self._public_url is not None
        url = self._public_url
        if self.config.webhook_token is not None:
            url = f"{url}/{self.config.webhook_token.get_secret_value()}"
        for event in (*hooks.INBOUND_EVENTS, *hooks.STATUS_EVENTS):
            hook = {"id": webhook_id(self.name, event), "url": url, "event": event}
            await self._call("POST", "/webhooks", json=hook)
