"""iP1 SMS API v2: batches out, incoming SMS and delivery reports by webhook, status, history."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self
from urllib.parse import quote

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from bridge.confbase import GatewayConfigBase, UrlTokenMixin
from bridge.errors import Ambiguous, DeliveryError, Terminal
from bridge.models import (
    DeliveryUpdate,
    HistoryItem,
    OutboundSms,
    Outbox,
    SendResult,
    Status,
    WebhookAnswer,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.phone import is_dialable
from connectors.http import HttpGateway, request_json
from connectors.sms.ip1 import webhooks as hooks
from connectors.webhooks import iso_time

log = logging.getLogger(__name__)

LABEL = "iP1"
MAX_BODY = 2000  # iP1's documented limit for ``body``
# GSM 03.38 default alphabet and its extension table: text outside them needs UCS-2, which
# iP1 rejects under ``datacoding: gsm`` and which halves what fits in one SMS.
_GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)


class Ip1Config(GatewayConfigBase, UrlTokenMixin):
    type: Literal["ip1"]
    api_key: SecretStr
    # A registered sender: digits of a number (up to 15) or a name of 3 to 11 letters/digits.
    # Replies go out from the number the customer wrote to when iP1 told us which it was.
    sender: str
    # iP1 signs nothing: incoming SMS and delivery reports come to
    # <server.public_url>/webhooks/sms/<name>/<webhook_token>.
    webhook_token: SecretStr
    receive: Literal["poll", "webhook", "both"] = "webhook"
    # Delivery reports bring statuses at once; the poll only catches lost ones (iP1 gives up
    # after 10 tries) and would cost a call per waiting SMS each time.
    status_poll_interval: float = Field(default=300.0, gt=0, le=86400)
    base_url: HttpUrl = HttpUrl("https://api.ip1sms.com")
    datacoding: Literal["auto", "gsm", "ucs"] = "auto"
    # Written before our outbox id into each batch's ``reference``: it finds an interrupted send
    # again. Two bridges sharing one iP1 account need different prefixes.
    reference_prefix: str = Field(
        default="smsbridge-", max_length=40, pattern=r"^[A-Za-z0-9_.:-]*$"
    )

    @field_validator("sender")
    @classmethod
    def _sender_ok(cls, value: str) -> str:
        text = value.strip()
        digits = text.removeprefix("+").replace(" ", "").replace("-", "")
        if digits.isdigit():
            if len(digits) > 15:
                raise ValueError("a sender number has at most 15 digits")
            return digits  # iP1 writes numbers without '+'
        if not (3 <= len(text) <= 11 and text.isascii() and text.isalnum()):
            raise ValueError("must be a phone number or a name of 3 to 11 letters and digits")
        return text

    @model_validator(mode="after")
    def _webhook_only(self) -> Self:
        if self.receive != "webhook":
            raise ValueError(
                f"receive: {self.receive} is not possible with iP1 (its API lists messages per "
                "number only, so new SMS cannot be polled): use receive: webhook and set the "
                "portal's incoming SMS URL to <server.public_url>/webhooks/sms/"
                f"{self.name}/<webhook_token>"
            )
        return self


def msisdn(number: str) -> str:
    """iP1 writes numbers as digits without '+'; anything else cannot be sent to."""
    if not is_dialable(number):
        raise Terminal(f"{LABEL} can only send to phone numbers, not {number!r}")
    return number[1:]


def gsm_only(text: str) -> bool:
    return all(char in _GSM for char in text)


class Ip1(HttpGateway):
    """One iP1 account."""

    awaits = (Status.QUEUED, Status.SENT)
    # iP1 re-sends a callback unless it gets 200 OK: our usual 202 would only cause repeats.
    webhook_answer = WebhookAnswer(b'{"status":"ok"}')

    def __init__(self, config: Ip1Config, public_url: str | None) -> None:
        self.config = config
        self.name = config.name
        token = config.webhook_token.get_secret_value()
        # Carries the secret token: it goes to iP1 inside the batch and never into a log line.
        self._report_url = f"{public_url}/{token}" if public_url else None

    async def start(self) -> None:
        if self._report_url is None:
            log.warning(
                "%s: server.public_url is not set, so iP1 cannot send delivery reports; the "
                "status of sent SMS is polled every %g s instead",
                self.name,
                self.config.status_poll_interval,
            )
        bearer = f"Bearer {self.config.api_key.get_secret_value()}"
        self.open_client(
            str(self.config.base_url),
            self.config.timeout,
            {"Authorization": bearer, "Accept": "application/json"},
        )

    def reference(self, outbox_id: int) -> str:
        return f"{self.config.reference_prefix}{outbox_id}"

    def _datacoding(self, text: str) -> str:
        if self.config.datacoding != "auto":
            return self.config.datacoding
        return "gsm" if gsm_only(text) else "ucs"

    async def send(self, sms: OutboundSms) -> SendResult:
        recipient = msisdn(sms.to)
        if not sms.text.strip():
            raise Terminal(f"{LABEL} cannot send an empty SMS")
        if len(sms.text) > MAX_BODY:
            raise Terminal(f"{LABEL} takes at most {MAX_BODY} characters ({len(sms.text)} given)")
        batch: dict[str, Any] = {
            "sender": sms.device or self.config.sender,
            "recipients": [recipient],
            "body": sms.text,
            "type": "sms",
            "datacoding": self._datacoding(sms.text),
            "reference": self.reference(sms.id),
        }
        if self._report_url is not None:
            batch["deliveryReportUrl"] = self._report_url
        body = await request_json(
            self.client, "POST", "/v2/batches", label=LABEL, sending=True, json=batch
        )
        batch_id, code = _accepted(body)
        if batch_id is None:
            # The answer's shape is undocumented; without an id the batch may still exist, so
            # the core looks it up by reference (find_sent) before sending again.
            raise Ambiguous(f"{LABEL} answered without a batch id")
        if code is None:
            return SendResult(provider_id=batch_id, status=Status.QUEUED, raw_status="accepted")
        status = hooks.status_of(code)
        if status is Status.FAILED:
            # A 2xx whose message is already rejected (no funds, barred number): still a refusal.
            raise Terminal(
                f"{LABEL} refused the SMS: {hooks.reason_of(code)}", raw_status=hooks.describe(code)
            )
        return SendResult(provider_id=batch_id, status=status, raw_status=hooks.describe(code))

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        """The latest status of each batch's message (one recipient per batch)."""
        updates: list[DeliveryUpdate] = []
        for sms in sent:
            if not sms.provider_id:
                continue
            path = f"/v2/batches/{quote(sms.provider_id, safe='')}/messages"
            try:
                body = await request_json(self.client, "GET", path, label=LABEL)
            except DeliveryError as exc:
                if exc.raw_status == "404":
                    continue  # a batch iP1 no longer knows: nothing to learn about it
                if updates:
                    # Keep what was learnt; the next poll asks about the rest again.
                    log.info("%s: status poll stopped early: %s", self.name, exc.reason)
                    break
                raise
            update = self._status_update(sms, hooks.rows(body))
            if update is not None:
                updates.append(update)
        return updates

    def _status_update(self, sms: Outbox, rows: list[dict[str, Any]]) -> DeliveryUpdate | None:
        recipient = sms.to.removeprefix("+")
        mine = [row for row in rows if str(row.get("recipient") or "") == recipient]
        row = mine[0] if mine else rows[0] if len(rows) == 1 else None
        code = hooks.latest_status(row) if row is not None else None
        if code is None:
            return None
        assert sms.provider_id is not None
        return DeliveryUpdate(
            self.name,
            sms.provider_id,
            hooks.status_of(code),
            hooks.describe(code),
            hooks.reason_of(code),
        )

    async def _conversation(self, participant: str) -> list[dict[str, Any]]:
        path = f"/v2/conversations/{quote(participant, safe='')}"
        try:
            body = await request_json(self.client, "GET", path, label=LABEL)
        except Terminal as exc:
            if exc.raw_status == "404":
                return []  # iP1's answer for "no messages to list"
            raise
        return hooks.rows(body)

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The batch of ``sms`` if it went out since ``since``: a message with our reference,
        its number and its text, created no earlier than ``since``.

        The reference alone is not enough: a fresh store numbers its outbox from 1 again, so
        a batch of the previous store carries the same reference, and taking it for this SMS
        would record it as sent while it never goes out.
        """
        if not is_dialable(sms.to):
            return None  # send() refuses such numbers before calling iP1
        recipient = msisdn(sms.to)
        reference = self.reference(sms.id)
        # iP1 writes whole seconds: a batch stored in the same second as ``since`` may read
        # up to a second earlier.
        floor = since - timedelta(seconds=1)
        for row in await self._conversation(recipient):
            batch = str(row.get("batchId") or "")
            created = _created(row)
            if (
                row.get("reference") == reference
                and str(row.get("recipient") or "") == recipient
                and row.get("body") == sms.text
                and batch
                and batch not in exclude
                # Without a time the row could be from an earlier store: a duplicate SMS is
                # better than one silently never sent.
                and created is not None
                and created >= floor
            ):
                return batch
        return None

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        participant = number.removeprefix("+") if is_dialable(number) else number
        items = [
            hooks.history_item(row, participant) for row in await self._conversation(participant)
        ]
        # iP1 does not say in which order it lists; oldest first is what the chat shows.
        items.sort(key=lambda item: item.at or datetime.min.replace(tzinfo=UTC))
        return items[-limit:]

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.DOCS

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        return hooks.parse(self.name, self.config.webhook_token, request)


def _created(row: dict[str, Any]) -> datetime | None:
    """When iP1 took the message: its earliest status, else its ``modified`` time."""
    stamps = [
        stamp
        for status in row.get("statuses") or []
        if isinstance(status, dict) and (stamp := iso_time(status.get("created")))
    ]
    return min(stamps) if stamps else iso_time(row.get("modified"))


def _accepted(body: Any) -> tuple[str | None, int | None]:
    """(batch id, status code) from a send answer: a batch object, or a list of its messages."""
    if isinstance(body, list):
        messages = [m for m in body if isinstance(m, dict)]
        if not messages:
            return None, None
        first = messages[0]
        batch = first.get("batchId")
        return (str(batch) if batch else None), hooks.latest_status(first)
    if isinstance(body, dict):
        if body.get("batchId"):  # a single message resource
            return str(body["batchId"]), hooks.latest_status(body)
        batch = body.get("id")
        return (str(batch) if batch else None), hooks.code_of(body.get("status"))
    return None, None
