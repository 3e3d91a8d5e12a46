"""SMSMobileAPI (an Android phone as gateway): send, poll, status, history, both webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import Field, HttpUrl, SecretStr, model_validator

from bridge import phone
from bridge.confbase import GatewayConfigBase, UrlTokenMixin
from bridge.errors import Retryable, Terminal
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
from bridge.phone import normalize
from connectors.http import HttpGateway, request_json
from connectors.sms.smsmobileapi import webhooks as hooks
from connectors.webhooks import iso_time

LABEL = "SMSMobileAPI"
# Status strings seen in /log/sent/sms/ by third-party code; the response shape is undocumented.
_LOG_STATUS = {"success": Status.SENT, "pending": Status.QUEUED, "error": Status.FAILED}


class SmsMobileApiConfig(GatewayConfigBase, UrlTokenMixin):
    type: Literal["smsmobileapi"]
    api_key: SecretStr
    base_url: HttpUrl = HttpUrl("https://api.smsmobileapi.com")
    webhook_token: SecretStr | None = None  # plain webhook: POST /webhooks/sms/<name>/<token>
    webhook_secret: SecretStr | None = None  # signed Webhook V2: POST /webhooks/sms/<name>
    device: str | None = None  # sIdentifiant of the phone that sends; empty = first available
    sim: Literal[1, 2] | None = None  # SIM port; empty = the phone decides
    max_clock_skew: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _webhook_auth(self) -> Self:
        if self.takes_webhooks and self.webhook_token is None and self.webhook_secret is None:
            raise ValueError(
                f"receive: {self.receive} needs webhook_token (plain webhook) "
                "or webhook_secret (signed Webhook V2)"
            )
        return self


class SmsMobileApi(HttpGateway):
    """One SMSMobileAPI account."""

    date_margin = 0.0  # unix timestamps: absolute instants

    # It reports no handset receipts: "sent" is as far as an SMS gets, so only queued ones are
    # worth asking about.
    awaits = (Status.QUEUED,)

    def __init__(self, config: SmsMobileApiConfig) -> None:
        self.config = config
        self.name = config.name
        self._ms_timestamps = False  # learned from the first poll (some accounts answer in ms)

    async def start(self) -> None:
        self.open_client(str(self.config.base_url), self.config.timeout)

    def _key(self) -> dict[str, str]:
        return {"apikey": self.config.api_key.get_secret_value()}

    async def send(self, sms: OutboundSms) -> SendResult:
        form = {**self._key(), "recipients": sms.to, "message": sms.text}
        device = sms.device or self.config.device
        if device:
            form["sIdentifiant"] = device
        sim = sms.sim or self.config.sim
        if sim:
            form["port"] = str(sim)
        body = await request_json(
            self.client, "POST", "/sendsms/", label=LABEL, sending=True, data=form
        )
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise Retryable(f"{LABEL} answered without a result")
        error = result.get("error")
        if error not in (0, "0", "", None) or result.get("sent") not in (1, "1", True):
            # HTTP 200 with an application error: the vendor's way of refusing.
            message = result.get("message") or result.get("note") or f"error {error}"
            raise Terminal(f"{LABEL} refused the SMS: {str(message)[:200]}", raw_status=str(error))
        provider_id = result.get("id")
        return SendResult(
            provider_id=str(provider_id) if provider_id else None,
            status=Status.QUEUED,
            raw_status="sent:1",
        )

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        """Received SMS dated at or after ``since``.

        Vendor: ``GET /getsms/?after_timestamp_unix=`` filters on each row's
        ``timestamp_unix`` [doc]; whether the bound is inclusive is not documented, and some
        accounts answer (and filter) in milliseconds [seen]. Assumed: ``timestamp_unix`` is
        the phone's own date of the SMS, so a late sync or a wrong phone clock shows up as an
        old or future date, which the core's overlap window covers; ``guid`` is unique per SMS
        and the same in the webhooks (so the safety net recognises what they delivered).
        We ask from one second earlier, in the unit the account answers in.
        """
        after = int(since.timestamp()) - 1
        params = {
            **self._key(),
            "after_timestamp_unix": str(after * 1000 if self._ms_timestamps else after),
        }
        body = await request_json(self.client, "GET", "/getsms/", label=LABEL, params=params)
        messages: list[InboundSms] = []
        for row in _rows(body):
            stamp = _unix(row.get("timestamp_unix"))
            guid = row.get("guid")
            if stamp is None or not guid:
                continue
            if float(row.get("timestamp_unix") or 0) > 1e12:
                self._ms_timestamps = True
            number = phone.listed_sender(self.name, guid, row.get("number"), "number")
            if number is None:
                continue
            messages.append(
                InboundSms(
                    gateway=self.name,
                    provider_id=str(guid),
                    sender=number,
                    text=str(row.get("message") or ""),
                    received_at=datetime.fromtimestamp(stamp, UTC),
                    alias=row.get("alias") or None,
                    device=row.get("sIdentifiantPhone") or None,
                )
            )
        return messages

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        updates: list[DeliveryUpdate] = []
        for guid in (sms.provider_id for sms in sent if sms.provider_id):
            params = {**self._key(), "guid_message": guid}
            body = await request_json(
                self.client, "GET", "/log/sent/sms/", label=LABEL, params=params
            )
            for row in _rows(body):
                if str(row.get("guid") or row.get("guid_message") or "") != guid:
                    continue
                update = _log_update(self.name, guid, row)
                if update is not None:
                    updates.append(update)
        return updates

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The guid of an SMS to the same number with the same text sent since ``since``."""
        params = {**self._key(), "keyword": sms.to}
        body = await request_json(self.client, "GET", "/log/sent/sms/", label=LABEL, params=params)
        floor = since.timestamp()
        matches = [
            row
            for row in _rows(body)
            if normalize(str(row.get("recipients") or "")) == sms.to
            and str(row.get("message") or "") == sms.text
            and (_unix(row.get("timestamp_unix")) or 0) >= floor
            and str(row.get("guid") or "") not in exclude
        ]
        matches.sort(key=lambda row: _unix(row.get("timestamp_unix")) or 0)
        guid = matches[0].get("guid") if matches else None
        return str(guid) if guid else None

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        for origin in ("received", "sent"):
            params = {**self._key(), "origineConversation": origin, "numero": number}
            body = await request_json(
                self.client, "GET", "/conversation/sms/list/", label=LABEL, params=params
            )
            if not isinstance(body, dict) or body.get("success") is False:
                reason = body.get("error") if isinstance(body, dict) else "unexpected answer"
                raise Terminal(f"{LABEL} could not list the conversation: {reason}")
            for conversation in body.get("conversations") or []:
                if not isinstance(conversation, dict):
                    continue
                if normalize(str(conversation.get("phone_number") or "")) != number:
                    continue
                items = [
                    _history_item(m)
                    for m in conversation.get("messages") or []
                    if isinstance(m, dict)
                ]
                return items[-limit:]
        return []

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.docs(self.config.webhook_token, self.config.webhook_secret)

    async def device_status(self) -> list[DeviceStatus]:
        """The connected phones: ``GET /gateway/mobile/list/`` [doc], whose answer is
        undocumented (``additionalProperties``); the seed names its fields sid, date, battery,
        version, label. Assumed: rows under ``result.mobiles`` (or where other endpoints keep
        them), ``battery`` in percent, ``online`` 1/0 and ``last_seen_unix`` where given.
        Only the configured ``device`` is watched when there is one."""
        params = {**self._key(), **({"sid": self.config.device} if self.config.device else {})}
        body = await request_json(
            self.client, "GET", "/gateway/mobile/list/", label=LABEL, params=params
        )
        return [_mobile(row) for row in _rows(body) if row.get("sid") or row.get("label")]

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        if request.token is not None:
            return hooks.parse_plain(self.name, self.config.webhook_token, request)
        return hooks.parse_v2(
            self.name, self.config.webhook_secret, self.config.max_clock_skew, request
        )


def _rows(body: Any) -> list[dict[str, Any]]:
    """The list of rows in an answer, wherever this endpoint keeps it."""
    if isinstance(body, dict):
        result = body.get("result", body)
        if isinstance(result, dict):
            if result.get("error") not in (0, "0", "", None):
                raise Retryable(f"{LABEL} error: {result.get('message') or result.get('error')}")
            for key in ("sms", "data", "messages", "rows", "mobiles"):
                if isinstance(result.get(key), list):
                    return [row for row in result[key] if isinstance(row, dict)]
        if isinstance(result, list):
            return [row for row in result if isinstance(row, dict)]
        return []
    if isinstance(body, list):
        return [row for row in body if isinstance(row, dict)]
    return []


def _mobile(row: dict[str, Any]) -> DeviceStatus:
    online = row.get("online")
    battery = _unix(row.get("battery"))
    seen = _unix(row.get("last_seen_unix"))
    return DeviceStatus(
        device=str(row.get("sid") or row.get("label")),
        online=None if online is None else str(online).lower() in ("1", "true", "yes", "online"),
        battery=None if battery is None else max(0, min(100, round(battery))),
        last_seen=datetime.fromtimestamp(seen, UTC) if seen is not None else None,
    )


def _unix(value: Any) -> float | None:
    try:
        stamp = float(value)
    except (TypeError, ValueError):
        return None
    return stamp / 1000 if stamp > 1e12 else stamp  # milliseconds seen in the wild


def _log_update(gateway: str, guid: str, row: dict[str, Any]) -> DeliveryUpdate | None:
    raw = str(row.get("status") or "")
    status = _LOG_STATUS.get(raw.lower())
    if str(row.get("error_api")) == "1" or str(row.get("error_mobile")) == "1":
        status = Status.FAILED
    if status is None:
        return None
    reason = row.get("error_message") if status is Status.FAILED else None
    return DeliveryUpdate(gateway, guid, status, raw or "error", str(reason) if reason else None)


def _history_item(message: dict[str, Any]) -> HistoryItem:
    at = iso_time(message.get("timestamp_utc")) or iso_time(message.get("date"))
    return HistoryItem(
        outgoing=message.get("direction") == "outgoing",
        text=str(message.get("message") or ""),
        at=at,
        provider_id=str(message.get("message_id")) if message.get("message_id") else None,
    )
