"""Smstools -> the bridge for the fake: inbox-message webhooks and delivery reports."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.testing.fake_base import LoopbackFake, RecordT
from connectors.sms.smstools.fake_resources import InboxMessage, SentMessage


class WebhooksMixin(LoopbackFake[RecordT]):
    """The vendor -> bridge half of :class:`FakeSmstools` (the base's shared client)."""

    sent: list[SentMessage]

    async def post_webhook(self, url: str, body: Any) -> httpx.Response:
        """POST ``body`` (JSON, or exact bytes) to the bridge as the vendor does."""
        return await self.post_json(url, body)

    async def deliver_inbox_message(
        self, url: str, sms: InboxMessage, *, batched: bool = True, **extra: Any
    ) -> httpx.Response:
        """The only sample seen (third-party): a one-element array, no id, no date.

        ``extra`` adds fields to ``message`` for payloads that carry more than the sample.
        """
        event = {
            "webhook_type": "inbox_message",
            "message": {
                "sender": sms.sender,
                "receiver": sms.receiver,
                "content": sms.message,
                **extra,
            },
        }
        return await self.post_webhook(url, [event] if batched else event)

    async def deliver_delivery_report(
        self,
        url: str,
        messageid: str,
        status: str,
        *,
        detail: int | None = None,
        batched: bool = True,
    ) -> httpx.Response:
        """OUR ASSUMPTION of the undocumented report: the message id, our reference, a status
        word as the conversation shows it and, for REJECTED, its detail code. It also moves the
        message's ``deliveryStatus``, so polling tells the same story."""
        sms = next((s for s in self.sent if s.messageid == messageid), None)
        if sms is not None:
            sms.status = status
        message: dict[str, Any] = {
            "messageid": messageid,
            "reference": sms.reference if sms else None,
            "receiver": sms.to if sms else None,
            "status": status,
        }
        if detail is not None:
            message["detail"] = detail
        event = {"webhook_type": "delivery_report", "message": message}
        return await self.post_webhook(url, [event] if batched else event)
