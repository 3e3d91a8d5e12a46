"""Twilio Programmable Messaging: send, webhooks and status callbacks, polling, history, media."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from bridge import phone
from bridge.confbase import GatewayConfigBase, UrlTokenMixin
from bridge.errors import Ambiguous, Terminal
from bridge.models import (
    DeliveryUpdate,
    DeviceStatus,
    HistoryItem,
    InboundSms,
    OutboundSms,
    Outbox,
    SendResult,
    Status,
    WebhookAnswer,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.phone import is_dialable, normalize
from connectors.sms.twilio import mms
from connectors.sms.twilio import webhooks as hooks
from connectors.sms.twilio.api import LABEL, TwilioApi

MAX_PAGES = 50  # x 1000 messages: a bound on one poll, not a limit anyone should meet
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _sender_ok(value: str) -> bool:
    """An E.164 number, a short code, or an alphanumeric sender ID (letters, at most 11)."""
    if is_dialable(value) or (value.isdigit() and 3 <= len(value) <= 8):
        return True
    plain = value.replace(" ", "")
    return 0 < len(value) <= 11 and plain.isalnum() and any(c.isalpha() for c in plain)


class TwilioConfig(GatewayConfigBase, UrlTokenMixin):
    type: Literal["twilio"]
    account_sid: str
    auth_token: SecretStr = Field(min_length=1)
    from_number: str | None = None  # the account's number SMS leave from (E.164)
    messaging_service_sid: str | None = None  # send through a Messaging Service instead
    base_url: HttpUrl = HttpUrl("https://api.twilio.com")
    # Optional extra guard: webhooks at /webhooks/sms/<name>/<token>. Twilio signs every
    # request anyway, so the signature is always checked too.
    webhook_token: SecretStr | None = None

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        if len(value) != 34 or not value.startswith("AC") or not _hex(value[2:]):
            raise ValueError("must be the Account SID: 'AC' followed by 32 hex digits")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value) != 34 or not value.startswith("MG") or not _hex(value[2:])
        ):
            raise ValueError("must be a Messaging Service SID: 'MG' followed by 32 hex digits")
        return value

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = normalize(value)
        if not _sender_ok(number):
            raise ValueError(
                f"{value!r} is not a phone number (+15017122661), short code or sender ID"
            )
        return number

    @model_validator(mode="after")
    def _a_sender(self) -> Self:
        if self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("needs from_number or messaging_service_sid (who the SMS come from)")
        return self


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class Twilio:
    """One Twilio account (or subaccount), sending from a number or a Messaging Service."""

    awaits = (Status.QUEUED, Status.SENT)  # Twilio reports handset receipts: "sent" may move on
    date_margin = 0.0  # Twilio dates by its own clock, with a zone
    webhook_answer = WebhookAnswer(EMPTY_TWIML, media_type="text/xml")
    # SendsMedia: MMS by MediaUrl, which Twilio fetches from the bridge's /media/<token>.
    max_media_bytes = mms.MAX_BYTES
    max_media_files = mms.MAX_FILES
    media_types = mms.ACCEPTED

    def __init__(self, config: TwilioConfig, public_url: str | None = None) -> None:
        self.config = config
        self.name = config.name
        self._has_media: set[str] = set()  # sids of the last listing that carry media
        token = config.webhook_token
        # Without a public URL Twilio cannot call back, and without `receive: webhook|both`
        # the bridge would not route its callbacks: status then comes from polling.
        self.status_callback: str | None = None
        if public_url is not None and config.takes_webhooks:
            suffix = f"/{token.get_secret_value()}" if token is not None else ""
            self.status_callback = public_url + suffix
        self.api = TwilioApi(
            str(config.base_url),
            config.account_sid,
            config.auth_token.get_secret_value(),
            config.timeout,
        )

    async def start(self) -> None:
        await self.api.open()

    async def stop(self) -> None:
        await self.api.close()

    def _sender(self, sms: OutboundSms) -> str | None:
        # The number that received the customer's SMS answers it (``device``).
        return sms.device if sms.device and _sender_ok(sms.device) else self.config.from_number

    # -- sending ---------------------------------------------------------------------------

    async def device_status(self) -> list[DeviceStatus]:
        """Twilio has no phone to watch: whether the account answers (``GET
        /Accounts/{Sid}.json`` [doc], a cheap authenticated read) and is ``active``; a
        suspended or closed one cannot send."""
        body = await self.api.call("GET", ".json")
        status = str(body.get("status") or "")
        return [DeviceStatus("account", online=status == "active")]

    async def send(self, sms: OutboundSms) -> SendResult:
        form: dict[str, str | list[str]] = {"To": sms.to}
        # Body may be left out when media go (error 21602 asks for "Body or MediaUrl").
        if sms.text or not sms.media:
            form["Body"] = sms.text
        if sms.media:
            form["MediaUrl"] = [media.url for media in sms.media]  # the parameter repeated
        sender = self._sender(sms)
        if sender:
            form["From"] = sender
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        body = await self.api.call("POST", "/Messages.json", sending=True, data=form)
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            raise Ambiguous(f"{LABEL} accepted the request but named no message sid")
        raw = str(body.get("status") or "queued").lower()
        update = hooks.update_of(
            self.name, sid, raw, body.get("error_code"), body.get("error_message")
        )
        if update is not None and update.status is Status.FAILED:
            raise Terminal(f"{LABEL} refused the SMS: {update.reason}", raw_status=raw)
        status = update.status if update is not None else Status.QUEUED
        return SendResult(provider_id=sid, status=status, raw_status=raw)

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The sid of an SMS to ``sms.to`` with the same body created since ``since``.

        Twilio has no idempotency key. ``DateSent`` filters by day, and a message still in
        Twilio's queue has no date_sent yet, so the newest page without that filter is read
        too.
        """
        params = {"To": sms.to}
        sender = self._sender(sms)
        if sender and not self.config.messaging_service_sid:
            params["From"] = sender  # a service picks the number itself
        since = _utc(since)
        floor = since - timedelta(seconds=1)  # Twilio's dates have whole seconds
        dated = {**params, "DateSent>": since.strftime("%Y-%m-%d")}
        found: list[tuple[datetime, str]] = []
        for query, pages in ((dated, MAX_PAGES), (params, 1)):
            async for row in self.api.messages(query, pages):
                created = hooks.rfc2822(row.get("date_created"))
                sid = str(row.get("sid") or "")
                if (
                    sid
                    and sid not in exclude
                    and str(row.get("direction", "")).startswith("outbound")
                    and normalize(str(row.get("to") or "")) == sms.to
                    and row.get("body") == sms.text
                    and created is not None
                    and created >= floor
                ):
                    found.append((created, sid))
            if found:
                break
        return min(found)[1] if found else None

    # -- receiving -------------------------------------------------------------------------

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.docs(self.config.webhook_token, self.webhook_answer.body)

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        return hooks.parse(self.name, self.config.auth_token, self.config.webhook_token, request)

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        """Messages Twilio received on days from ``since`` on.

        Vendor: ``Messages.json?DateSent>=YYYY-MM-DD`` filters by whole UTC days, pages by
        ``next_page_uri``, and dates each message by Twilio's own clock [doc]. Assumed: a
        message shows in the list within minutes, which the core's overlap window far
        exceeds; sids are unique, and a webhook's ``MessageSid`` is the same sid [doc].
        Media are listed for the new ones only (``complete_polled``). With a Messaging
        Service every poll lists the account's messages of a day or two (``poll_overlap``):
        a shorter overlap or a longer ``poll_interval`` costs fewer API calls.
        """
        params = {"DateSent>": since.strftime("%Y-%m-%d")}
        if self.config.from_number and not self.config.messaging_service_sid:
            params["To"] = self.config.from_number
        messages: list[InboundSms] = []
        self._has_media = set()
        async for row in self.api.messages(params, MAX_PAGES):
            sent = hooks.rfc2822(row.get("date_sent"))
            if row.get("direction") != "inbound" or sent is None:
                continue
            if not self._ours(row) or not row.get("sid") or not row.get("from"):
                continue
            sender = phone.listed_sender(self.name, row["sid"], row.get("from"), "from")
            if sender is None:
                continue
            if str(row.get("num_media") or "0") not in ("0", ""):
                self._has_media.add(str(row["sid"]))
            to = str(row.get("to") or "")
            messages.append(
                InboundSms(
                    gateway=self.name,
                    provider_id=str(row["sid"]),
                    sender=sender,
                    text=str(row.get("body") or ""),
                    received_at=sent,
                    device=normalize(to) if to else None,
                )
            )
        return messages

    async def complete_polled(self, messages: list[InboundSms]) -> list[InboundSms]:
        """The media of new messages that have some (one Media.json call each)."""
        result = []
        for sms in messages:
            if sms.provider_id not in self._has_media:
                result.append(sms)
                continue
            sid = sms.provider_id
            attachments = []
            listing = await self.api.call("GET", f"/Messages/{sid}/Media.json")
            for index, media in enumerate(listing.get("media_list") or []):
                uri = media.get("uri") if isinstance(media, dict) else None
                url = self.api.media_url(uri) if isinstance(uri, str) else None
                if url is not None:
                    kind = str(media.get("content_type") or "")
                    attachments.append(hooks.media_attachment(sid, index, url, kind))
            result.append(replace(sms, attachments=tuple(attachments)))
        return result

    def _ours(self, row: dict[str, Any]) -> bool:
        """Inbound to our number, or to any number of our Messaging Service."""
        service = self.config.messaging_service_sid
        if service and row.get("messaging_service_sid") == service:
            return True
        number = self.config.from_number
        return bool(number) and normalize(str(row.get("to") or "")) == number

    async def fetch_media(self, url: str) -> tuple[bytes, str]:
        return await self.api.fetch(url)

    # -- status and history ----------------------------------------------------------------

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        updates: list[DeliveryUpdate] = []
        for sms in sent:
            if not sms.provider_id:
                continue
            try:
                body = await self.api.call("GET", f"/Messages/{sms.provider_id}.json")
            except Terminal as exc:
                if exc.raw_status == "20404":
                    continue  # deleted at Twilio: nothing more to learn about it
                raise
            raw = str(body.get("status") or "")
            update = hooks.update_of(
                self.name, sms.provider_id, raw, body.get("error_code"), body.get("error_message")
            )
            if update is not None and (update.status, update.raw_status) != (
                sms.status,
                sms.raw_status,
            ):
                updates.append(update)
        return updates

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        """Both directions of the conversation with ``number``, oldest first."""
        ours = self.config.from_number if not self.config.messaging_service_sid else None
        queries = [{"To": number}, {"From": number}]
        if ours:
            queries = [{"To": number, "From": ours}, {"From": number, "To": ours}]
        items: list[tuple[datetime, HistoryItem]] = []
        for query in queries:
            async for row in self.api.messages({**query, "PageSize": str(limit)}, 1):
                at = hooks.rfc2822(row.get("date_sent")) or hooks.rfc2822(row.get("date_created"))
                item = HistoryItem(
                    outgoing=str(row.get("direction", "")).startswith("outbound"),
                    text=str(row.get("body") or ""),
                    at=at,
                    provider_id=str(row.get("sid")) if row.get("sid") else None,
                )
                items.append((at or datetime.min.replace(tzinfo=UTC), item))
        items.sort(key=lambda pair: pair[0])
        return [item for _, item in items[-limit:]]
