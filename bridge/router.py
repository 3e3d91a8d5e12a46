"""Inbound SMS -> posts in the right chats; status updates -> the outbox; what stays core."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bridge import storable
from bridge.batching import GroupCommit
from bridge.config import Config
from bridge.errors import InvalidSender
from bridge.metrics import Metrics
from bridge.models import DeliveryUpdate, InboundSms, WebhookEvents
from bridge.phone import is_sender
from bridge.ports import ChatPlatform
from bridge.render import inbound_header, split_text
from bridge.store.records import IngestItem
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)


class Router:
    """Decides where inbound SMS go and stores them with their posts in one transaction."""

    def __init__(
        self,
        config: Config,
        store: SqlStore,
        chats: dict[str, ChatPlatform],
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.store = store
        self.chats = chats
        self.metrics = metrics
        # Concurrent webhooks share a transaction; each is answered once it has committed.
        self.batcher: GroupCommit[IngestItem, int | None] = GroupCommit(store.inbound.ingest)
        self._routes = {g.name: config.chats_for(g.name) for g in config.gateways}

    def posts(self, sms: InboundSms) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The text parts each routed chat gets for ``sms``."""
        result = []
        for name in self._routes.get(sms.gateway, ()):
            platform = self.chats[name]
            text = sms.text
            if not text.strip():
                # An MMS may be all picture: its files are the message.
                text = "" if sms.attachments else "(empty message)"
            if not platform.threaded:
                text = f"{inbound_header(sms.sender, sms.alias)}\n{text}".rstrip("\n")
            parts = tuple(split_text(text, platform.max_text)) if text else ()
            result.append((name, parts))
        return tuple(result)

    def _item(self, sms: InboundSms, event: tuple[str, str] | None = None) -> IngestItem:
        fit = storable.inbound(sms)
        return IngestItem(fit, self.posts(fit), event)

    async def accept_webhook(self, gateway: str, events: WebhookEvents) -> bool:
        """Store what a webhook carried; True if any of it was new. Raises if not stored."""
        for sms in events.inbound:
            # Connectors check senders with phone.sender; this holds even where one forgot.
            if not is_sender(sms.sender):
                raise InvalidSender(
                    "sender", f"sender {sms.sender!r} is not a phone number or sender ID"
                )
        event_id = storable.key(events.event_id) if events.event_id else None
        event = (f"webhook:{gateway}", event_id) if event_id else None
        new = False
        if events.inbound:
            items = [
                self._item(sms, event if index == 0 else None)
                for index, sms in enumerate(events.inbound)
            ]
            results = await self.batcher.submit(items)
            new = self._count(gateway, "webhook", results)
        if events.updates:
            changed = await self.store.outbound.apply_updates(
                [storable.update(u) for u in events.updates], None if events.inbound else event
            )
            # A status for an SMS we have not matched yet is kept for later: accepted, not a
            # duplicate. Only a redelivered event is.
            new = new or changed is not None
        return new

    async def ingest_polled(
        self,
        gateway: str,
        messages: Sequence[InboundSms],
        cursor: tuple[str, str] | None,
        source: str = "poll",
    ) -> int:
        """Store polled SMS together with the cursor that fetched them."""
        items = [self._item(sms) for sms in messages if self._sender_ok(sms)]
        if not items and cursor is None:
            return 0
        results = await self.store.inbound.ingest(items, cursor)
        self._count(gateway, source, results)
        return sum(1 for r in results if r is not None)

    @staticmethod
    def _sender_ok(sms: InboundSms) -> bool:
        if is_sender(sms.sender):
            return True
        log.warning(
            "%s: SMS %s skipped: its sender %r is no address",
            sms.gateway,
            sms.provider_id,
            sms.sender,
        )
        return False

    async def apply_updates(self, updates: Sequence[DeliveryUpdate]) -> int:
        return len(
            await self.store.outbound.apply_updates([storable.update(u) for u in updates]) or []
        )

    def _count(self, gateway: str, source: str, results: Sequence[int | None]) -> bool:
        new = sum(1 for r in results if r is not None)
        if new:
            self.metrics.inbound.labels(gateway, source, "new").inc(new)
        if len(results) - new:
            self.metrics.inbound.labels(gateway, source, "duplicate").inc(len(results) - new)
        return new > 0
