"""Smstools "SMS Gateway API" v1: send, inbox polling, status and history by conversation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bridge import phone
from bridge.errors import Ambiguous, Retryable, Terminal
from bridge.listing import ZONE_MARGIN
from bridge.models import (
    DeliveryUpdate,
    HistoryItem,
    InboundSms,
    OutboundSms,
    Outbox,
    SendResult,
    Status,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.phone import is_dialable, normalize
from connectors.http import HttpGateway
from connectors.sms.smstools import api, payloads
from connectors.sms.smstools import webhooks as hooks
from connectors.sms.smstools.api import LABEL
from connectors.sms.smstools.config import SmstoolsConfig

log = logging.getLogger(__name__)

MAX_PAGES = 20  # per poll: 40,000 inbox rows between two polls is beyond any human inbox


class Smstools(HttpGateway):
    """One Smstools API client (X-Client-Id / X-Client-Secret)."""

    # Handset receipts come later than "sent", so sent SMS are still worth asking about.
    awaits = (Status.QUEUED, Status.SENT)
    date_margin = ZONE_MARGIN  # inbox dates carry no zone

    def __init__(self, config: SmstoolsConfig) -> None:
        self.config = config
        self.name = config.name
        self.zone = ZoneInfo(config.timezone)

    async def start(self) -> None:
        self.open_client(str(self.config.base_url), self.config.timeout)

    async def _call(
        self, method: str, path: str, what: str, *, sending: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        return await api.call(self.client, self.config, method, path, what, sending, **kwargs)

    # sending -----------------------------------------------------------------------------

    async def send(self, sms: OutboundSms) -> SendResult:
        if not is_dialable(sms.to):
            raise Terminal(f"{LABEL} can only send to phone numbers, not to {sms.to!r}")
        payload = {
            "message": sms.text,
            "to": sms.to.lstrip("+"),  # Smstools takes digits
            "sender": self._sender(sms),
            # Ours, stable across retries; the docs say <= 75 chars on one page, 255 on another.
            "reference": str(sms.id),
        }
        body = await self._call("POST", "/v1/message/send", "the SMS", sending=True, json=payload)
        ids = body.get("messageids")
        provider_id = body.get("messageid") or (ids[0] if isinstance(ids, list) and ids else None)
        if not isinstance(provider_id, str | int) or not str(provider_id).strip():
            # Accepted or not, we cannot tell: reconciliation looks for it before a resend.
            raise Ambiguous(f"{LABEL} answered the send without a message id")
        return SendResult(provider_id=str(provider_id), status=Status.QUEUED, raw_status="accepted")

    def _sender(self, sms: OutboundSms) -> str:
        # A conversation remembers the number the customer wrote to: answer from it.
        if sms.device and is_dialable(sms.device) and len(sms.device) <= 14:
            return sms.device
        return self.config.sender

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The id of an SMS with this text to this number since ``since``, if it went out."""
        floor = since.timestamp()
        found = [
            (payloads.unix(item.get("unixDatetime")) or 0.0, str(item["messageId"]))
            for item in await self._conversation(sms.to, self.config.page_size, 1)
            if item.get("direction") == "outbound"
            and item.get("messageId") not in (None, "")
            and item.get("message") == sms.text
            and (payloads.unix(item.get("unixDatetime")) or 0.0) >= floor
            and str(item["messageId"]) not in exclude
        ]
        return min(found)[1] if found else None

    # receiving ---------------------------------------------------------------------------

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        """Inbox rows back to ``since``.

        Vendor: ``GET /v1/message/inbox?limit=&page=&type=sms`` [doc] has no time or id
        filter and does not document its order or the zone of its ``date``. Assumed: pages
        run newest first [inferred], dates are UTC [seed] but may be account-local. So we
        page until a page reaches back past ``since`` (which the core has widened by
        ``ZONE_MARGIN``, wider than any zone offset), and the core tells new rows by ``ID``,
        never by date: a wrong ``timezone`` cannot hide an SMS.
        """
        path = "/v1/message/inbox" + (
            f"/{quote(self.config.inbox, safe='')}" if self.config.inbox else ""
        )
        bound = since.timestamp()
        rows: dict[str, dict[str, Any]] = {}
        for page in range(1, MAX_PAGES + 1):
            params = {"limit": str(self.config.page_size), "page": str(page), "type": "sms"}
            body = await self._call("GET", path, "the inbox request", params=params)
            listed = body.get("messages")
            if not isinstance(listed, list):
                raise Retryable(f"{LABEL} sent an inbox without 'messages'")
            # Past the bound only when every dated row of the page is: one late row with an
            # old date must not end the paging before the newer rows behind it.
            reached: bool | None = None
            for row in listed:
                if (
                    not isinstance(row, dict)
                    or row.get("ID") in (None, "")
                    or not row.get("sender")
                ):
                    continue
                at = payloads.parse_local(row.get("date"), self.zone)
                if at is not None:
                    reached = (reached is not False) and at.timestamp() < bound
                rows[str(row["ID"])] = row
            if reached or len(listed) < self.config.page_size:
                break
            if page * self.config.page_size >= _int(body.get("total"), default=1 << 30):
                break
        else:
            log.warning(
                "%s: %d inbox pages did not reach back to the poll window's start; older "
                "rows were not read this time",
                self.name,
                MAX_PAGES,
            )
        return [sms for key, row in rows.items() if (sms := self._inbound(key, row)) is not None]

    def _inbound(self, key: str, row: dict[str, Any]) -> InboundSms | None:
        sender = phone.listed_sender(self.name, key, row.get("sender"), "sender")
        if sender is None:
            return None
        receiver = row.get("receiver")
        at = payloads.parse_local(row.get("date"), self.zone)
        return InboundSms(
            gateway=self.name,
            provider_id=key,
            sender=sender,
            text=str(row.get("message") or ""),
            received_at=at or datetime.now(UTC),
            device=normalize(str(receiver)) if receiver else None,
        )

    async def complete_polled(self, messages: list[InboundSms]) -> list[InboundSms]:
        """Images are only listed in the conversation (``file``): match by local time and text.

        Asked for the new rows only, so a wide poll window costs no conversation calls."""
        if not self.config.fetch_attachments:
            return messages
        items: dict[str, list[dict[str, Any]]] = {}
        result = []
        for sms in messages:
            if not is_dialable(sms.sender):
                result.append(sms)
                continue
            if sms.sender not in items:
                try:
                    items[sms.sender] = await self._conversation(sms.sender, 100, 1)
                except Terminal as exc:
                    # A number the conversation API refuses must not hold up its text.
                    log.warning("%s: no attachments for an SMS: %s", self.name, exc.reason)
                    items[sms.sender] = []
            when = sms.received_at.astimezone(self.zone).replace(tzinfo=None)
            match = next(
                (
                    item
                    for item in items[sms.sender]
                    if item.get("direction") == "inbound"
                    and item.get("message") == sms.text
                    and (naive := payloads.parse_naive(item.get("datetime"))) is not None
                    and abs((naive - when).total_seconds()) <= 2
                ),
                None,
            )
            files = payloads.attachments(match) if match else ()
            result.append(replace(sms, attachments=files) if files else sms)
        return result

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.DOCS

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        return hooks.parse_webhook(self.name, self.config.webhook_token, self.zone, request)

    async def fetch_media(self, url: str) -> tuple[bytes, str]:
        return await api.download(self.client, self.config, url)

    # status and history ------------------------------------------------------------------

    async def _conversation(self, number: str, limit: int, page: int) -> list[dict[str, Any]]:
        path = f"/v1/conversation/{quote(number.lstrip('+'), safe='')}"
        params = {"limit": str(limit), "page": str(page)}
        body = await self._call("GET", path, "the conversation request", params=params)
        items = body.get("conversation")
        if not isinstance(items, list):
            raise Retryable(f"{LABEL} sent a conversation without 'conversation'")
        return [item for item in items if isinstance(item, dict)]

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        """``deliveryStatus`` of our SMS, read from each number's conversation (newest first)."""
        by_number: dict[str, dict[str, Outbox]] = {}
        for sms in sent:
            if sms.provider_id:
                by_number.setdefault(sms.to, {})[sms.provider_id] = sms
        updates: list[DeliveryUpdate] = []
        for number, wanted in by_number.items():
            missing = dict(wanted)
            for page in range(1, 4):  # beyond 3 pages the SMS is too old to still change
                items = await self._conversation(number, self.config.page_size, page)
                for item in items:
                    row = missing.pop(str(item.get("messageId")), None)
                    if row is None or item.get("direction") != "outbound":
                        continue
                    status, raw, reason = payloads.map_status(item.get("deliveryStatus"))
                    if status.rank > row.status.rank:
                        updates.append(
                            DeliveryUpdate(self.name, row.provider_id or "", status, raw, reason)
                        )
                if not missing or len(items) < self.config.page_size:
                    break
        return updates

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        items = await self._conversation(number, min(limit, 2000), 1)
        history = [
            HistoryItem(
                outgoing=item.get("direction") == "outbound",
                text=str(item.get("message") or ""),
                at=payloads.item_time(item, self.zone),
                provider_id=payloads.item_key(item),
            )
            for item in items
        ]
        epoch = datetime.min.replace(tzinfo=UTC)
        history.sort(key=lambda item: item.at or epoch)
        return history[-limit:]


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
