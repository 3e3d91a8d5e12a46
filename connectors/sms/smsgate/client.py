"""SMSGate for Android (capcom6): send with our id, webhooks, status polling, history.

Beside it: the inbox (polling and MMS media) in ``inbox``, credentials in ``auth``, webhook
registration in ``registration``, message states in ``states``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bridge.errors import ConfigError, Retryable, Terminal
from bridge.models import (
    DeliveryUpdate,
    DeviceStatus,
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
from connectors.http import HttpGateway, request_json
from connectors.sms.smsgate import devices, states
from connectors.sms.smsgate import webhooks as hooks
from connectors.sms.smsgate.auth import Auth
from connectors.sms.smsgate.config import LABEL, SmsGateConfig
from connectors.sms.smsgate.inbox import Inbox
from connectors.sms.smsgate.registration import Registration
from connectors.webhooks import iso_time

__all__ = ["SmsGate", "SmsGateConfig", "create"]


def create(config: SmsGateConfig, public_url: str | None) -> SmsGate:
    """The registry's factory: refuses a config that must register webhooks but has no URL."""
    if config.register_webhooks and public_url is None:
        raise ConfigError(
            [
                f"gateways.{config.name}.register_webhooks: needs server.public_url "
                "(the address the phone calls back)"
            ]
        )
    if config.mode == "local":
        return SmsGateLocal(config, public_url)
    return SmsGate(config, public_url)


class SmsGate(HttpGateway):
    """One SMSGate account: the phone's local server, or the cloud / a private server."""

    # Handset receipts exist: "sent" may still become "delivered".
    awaits = (Status.QUEUED, Status.SENT)

    def __init__(self, config: SmsGateConfig, public_url: str | None = None) -> None:
        self.config = config
        self.name = config.name
        self.api_base = config.api_base
        self._auth = Auth(config)
        self.inbox = Inbox(config, self.api_base, self._call, self._get)
        self._hooks = hooks.WebhookParser(
            config.name,
            config.message_id_prefix,
            config.region,
            self.inbox.media_url,
            states.PartsCounter(),
        )
        self.webhooks = Registration(config, public_url, self._call)

    # lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.open_client(self.api_base, self.config.timeout)

    async def stop(self) -> None:
        await self.webhooks.stop()
        await super().stop()

    async def register_webhooks(self) -> None:
        """Our webhooks on the phone or account (``register_webhooks``), by one instance."""
        if self.config.register_webhooks:
            await self.webhooks.start()

    async def stop_registering(self) -> None:
        await self.webhooks.stop()

    # HTTP -------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, sending: bool = False, **kw: Any) -> Any:
        try:
            return await request_json(
                self.client,
                method,
                path,
                label=LABEL,
                sending=sending,
                headers=await self._auth.headers(self.client),
                **kw,
            )
        except Terminal as exc:
            # An obtained JWT may be revoked early; a 401 means nothing was done, so once more.
            if exc.raw_status != "401" or self.config.auth != "jwt" or self.config.token:
                raise
        return await request_json(
            self.client,
            method,
            path,
            label=LABEL,
            sending=sending,
            headers=await self._auth.headers(self.client, renew=True),
            **kw,
        )

    async def _get(self, path: str) -> httpx.Response:
        """A raw GET with our credentials, for answers that are not JSON (media)."""
        return await self.client.get(path, headers=await self._auth.headers(self.client))

    async def device_status(self) -> list[DeviceStatus]:
        """The phone's health probe (local mode), or the account's devices' ``lastSeen``."""
        if self.config.mode == "local":
            return [await devices.phone_health(self._get)]
        return devices.device_list(await self._call("GET", "/devices"))

    # send -------------------------------------------------------------------------------------

    def message_id(self, outbox_id: int) -> str:
        return f"{self.config.message_id_prefix}{outbox_id}"

    async def send(self, sms: OutboundSms) -> SendResult:
        config = self.config
        message_id = self.message_id(sms.id)
        body: dict[str, Any] = {
            "id": message_id,
            "textMessage": {"text": sms.text},
            "phoneNumbers": [sms.to],
            "withDeliveryReport": config.with_delivery_report,
        }
        sim = sms.sim or config.sim
        if sim:
            body["simNumber"] = sim
        # The local server is one phone; cloud device ids are 21 characters.
        device = sms.device or config.device_id
        if config.mode == "cloud" and device and len(device) <= 21:
            body["deviceId"] = device
        if config.ttl is not None:
            body["ttl"] = config.ttl
        if config.priority is not None:
            body["priority"] = config.priority
        params = {"skipPhoneValidation": "true"} if config.skip_phone_validation else None
        path = "/message" if config.mode == "local" else "/messages"
        try:
            answer = await self._call("POST", path, sending=True, json=body, params=params)
        except Terminal as exc:
            if exc.raw_status != "409":
                raise
            return await self._already_there(sms, message_id)
        if not isinstance(answer, dict):
            raise Retryable(f"{LABEL} accepted the SMS with an unexpected answer")
        return self._result(message_id, answer)

    def _result(self, message_id: str, answer: dict[str, Any]) -> SendResult:
        raw = str(answer.get("state") or "Pending")
        status = states.STATES.get(raw, Status.QUEUED)
        return SendResult(str(answer.get("id") or message_id), status, raw)

    async def _already_there(self, sms: OutboundSms, message_id: str) -> SendResult:
        """A 409: the vendor has a message with our id. It is ours (an earlier attempt got
        through) unless it went to someone else or said something else, which means the id was
        reused: a fresh store on an old account. Then sending would silently drop this SMS, so
        refuse loudly. Hashed messages hide both, and are taken as ours."""
        try:
            # The text comes only with includeContent (documented for the same response by
            # GET /messages); a server that ignores it leaves the numbers to decide.
            state = await self._call(
                "GET", f"/messages/{message_id}", params={"includeContent": "true"}
            )
        except Terminal as exc:
            if exc.raw_status != "404":
                raise
            return SendResult(message_id, Status.QUEUED, "409")
        if isinstance(state, dict) and not state.get("isHashed"):
            numbers = states.recipients(state, self.config.region)
            stored = state.get("textMessage")
            text = stored.get("text") if isinstance(stored, dict) else None
            other = None
            if numbers and sms.to not in numbers:
                other = "another number"
            elif isinstance(text, str) and text != sms.text:
                other = "other text"
            if other is not None:
                raise Terminal(
                    f"{LABEL} already has message id {message_id} with {other}; "
                    "set a new message_id_prefix for this gateway",
                    raw_status="409",
                )
        return self._result(message_id, state if isinstance(state, dict) else {})

    # status -----------------------------------------------------------------------------------

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        updates: list[DeliveryUpdate] = []
        for sms in sent:
            if not sms.provider_id:
                continue
            try:
                state = await self._call("GET", f"/messages/{sms.provider_id}")
            except Terminal as exc:
                if exc.raw_status == "404":
                    continue  # forgotten by the gateway (the cloud drops old messages)
                raise
            if not isinstance(state, dict):
                raise Retryable(f"{LABEL} answered a status request with an unexpected answer")
            raw = str(state.get("state") or "")
            status = states.STATES.get(raw)
            if status is None or (status is sms.status and raw == sms.raw_status):
                continue
            reason = states.state_reason(state) if status is Status.FAILED else None
            if status is Status.FAILED and reason is None:
                reason = "cancelled" if raw == "Cancelled" else "the phone reported a failure"
            updates.append(DeliveryUpdate(self.name, sms.provider_id, status, raw, reason))
        return updates

    # inbound ----------------------------------------------------------------------------------

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.docs(self.config.webhook_token, self.config.signing_key)

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        hooks.verify(
            request,
            signing_key=self.config.signing_key,
            token=self.config.webhook_token,
            max_skew=self.config.max_clock_skew,
        )
        return self._hooks.parse(request)

    async def fetch_media(self, url: str) -> tuple[bytes, str]:
        """An MMS part from the phone; our credentials only ever go to our own gateway."""
        return await self.inbox.fetch_media(url)

    # history ----------------------------------------------------------------------------------

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        """Sent messages (with content) to ``number``, and in local mode its inbox messages."""
        items: list[HistoryItem] = []
        params = {"includeContent": "true", "limit": 100}
        sent = await self._call("GET", "/messages", params=params)
        for row in sent if isinstance(sent, list) else []:
            if not isinstance(row, dict) or row.get("isHashed"):
                continue
            numbers = states.recipients(row, self.config.region)
            text = (row.get("textMessage") or {}).get("text")
            if number not in numbers or not isinstance(text, str):
                continue
            stamps = [iso_time(v) for v in (row.get("states") or {}).values()]
            at = min((s for s in stamps if s is not None), default=None)
            items.append(HistoryItem(True, text, at, str(row.get("id") or "") or None))
        if self.config.mode == "local":
            for row in await self.inbox.rows(None):
                sms = self.inbox.message(row)
                if sms is not None and sms.sender == number:
                    items.append(HistoryItem(False, sms.text, sms.received_at, sms.provider_id))
        far = datetime.min.replace(tzinfo=UTC)
        items.sort(key=lambda item: item.at or far)
        return items[-limit:]


class SmsGateLocal(SmsGate):
    """The phone's local server, which alone lists the inbox (``receive: poll``, safety net)."""

    date_margin = 0.0  # ``createdAt`` carries its zone

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        return await self.inbox.poll(since)
