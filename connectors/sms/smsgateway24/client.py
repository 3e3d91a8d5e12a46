"""SmsGateway24 (Android phones as gateway): token login, send, poll, status, history, webhooks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge import logs, phone
from bridge.errors import Ambiguous, Retryable, Terminal
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
from connectors.sms.smsgateway24 import answers
from connectors.sms.smsgateway24 import webhooks as hooks
from connectors.sms.smsgateway24.answers import LABEL
from connectors.sms.smsgateway24.config import SmsGateway24Config

log = logging.getLogger(__name__)

# Dates the API filters by are days in the account's zone, which we do not know: asking from
# one day earlier than our UTC day never misses one (the core drops what we already have).
_DAY = timedelta(days=1)
_CLOCK_SKEW = timedelta(minutes=5)


class SmsGateway24(HttpGateway):
    """One SmsGateway24 account and the devices of it that the bridge uses."""

    # Phones report handset receipts (7), so a sent SMS may still become delivered.
    awaits = (Status.QUEUED, Status.SENT)
    date_margin = 0.0  # ``created`` carries its offset

    def __init__(self, config: SmsGateway24Config) -> None:
        self.config = config
        self.name = config.name
        self.devices = {str(d.device_id): d for d in config.devices}
        self.default_device = config.devices[0]
        self._token = config.token.get_secret_value() if config.token else None
        self._token_at = time.monotonic()
        self._login_lock = asyncio.Lock()

    async def start(self) -> None:
        self.open_client(str(self.config.base_url), self.config.timeout)

    # auth -------------------------------------------------------------------------------------

    @property
    def _can_login(self) -> bool:
        return self.config.email is not None and self.config.password is not None

    async def _login(self) -> str:
        email, password = self.config.email, self.config.password
        if email is None or password is None:
            raise Terminal(f"{LABEL} has no email and password to log in with")
        form = {"email": email, "pass": password.get_secret_value()}
        # POST, so the password never sits in a URL (proxies and access logs keep those).
        body = await request_json(self.client, "POST", "/gettoken", label=LABEL, data=form)
        if not isinstance(body, dict):
            raise Retryable(f"{LABEL} login sent an unexpected answer (not a JSON object)")
        if (problem := answers.error(body)) is not None:
            raise Terminal(f"{LABEL} login failed: {problem}", raw_status="error:1")
        token = body.get("token")
        if not isinstance(token, str) or not token.strip():
            raise Retryable(f"{LABEL} login answered without a token")
        logs.protect([token.strip()])
        return token.strip()

    async def _current_token(self, stale: str | None = None) -> str:
        """The token to call with; a new login when there is none, it is old, or ``stale``
        (the one a call was just refused with) is still the current one."""
        async with self._login_lock:
            # Under the lock, so concurrent callers refused with the same token log in once.
            expired = time.monotonic() - self._token_at > self.config.token_max_age
            if self._can_login and (
                self._token is None or (stale is not None and stale == self._token) or expired
            ):
                self._token = await self._login()
                self._token_at = time.monotonic()
            if self._token is None:  # the config guarantees a login or a token
                raise Terminal(f"{LABEL} has no token")
            return self._token

    async def _call(
        self, endpoint: str, params: dict[str, str], *, sending: bool = False
    ) -> dict[str, Any]:
        """POST ``params`` with the token; after any ``error: 1``, log in again and retry once.

        The vendor's words for a dead token are undocumented, so any ``error: 1`` may be one;
        only a new login tells. An ``error: 1`` answer means the call did nothing (a send saved
        no SMS), so repeating it, even a send, is safe. A genuine error (a wrong number, an
        unknown SMS) costs one login more and comes back for the caller to handle as before.
        """
        token = await self._current_token()
        body = await self._post(endpoint, token, params, sending)
        if answers.error(body) is not None and self._can_login:
            token = await self._current_token(stale=token)
            body = await self._post(endpoint, token, params, sending)
        if answers.refuses_token(body):
            problem = answers.error(body)
            raise Terminal(f"{LABEL} refused our token: {problem}", raw_status="error:1")
        return body

    async def _post(
        self, endpoint: str, token: str, params: dict[str, str], sending: bool
    ) -> dict[str, Any]:
        form = {"token": token, **params}
        try:
            body = await request_json(
                self.client, "POST", f"/{endpoint}", label=LABEL, sending=sending, data=form
            )
        except Terminal as exc:
            if exc.raw_status in ("401", "403") and self._can_login:
                # Undocumented, but an HTTP refusal is taken as a refused token: log in again.
                return {"error": 1, "message": f"token refused (HTTP {exc.raw_status})"}
            raise
        if not isinstance(body, dict):
            # A send may have been saved before the answer went wrong: reconcile, don't resend.
            error = Ambiguous if sending else Retryable
            raise error(f"{LABEL} sent an unexpected answer (not a JSON object)")
        return body

    async def device_status(self) -> list[DeviceStatus]:
        """Each configured phone's ``lastseen`` (``getdevicestatus`` [doc]); no online flag,
        no battery: the watchdog takes a phone unseen for ``down_after`` as offline."""
        found: list[DeviceStatus] = []
        for device in self.devices:
            body = await self._call("getdevicestatus", {"device_id": device})
            if (problem := answers.error(body)) is not None:
                raise Terminal(f"{LABEL} device {device}: {problem}", raw_status="error:1")
            found.append(DeviceStatus(device, last_seen=hooks.vendor_time(body.get("lastseen"))))
        return found

    # sending ----------------------------------------------------------------------------------

    def route(self, sms: OutboundSms) -> tuple[str, int]:
        """Device id and SIM slot for ``sms``: the ones its conversation came in on, while that
        device is still configured; else the first device and its SIM."""
        device = self.devices.get(sms.device or "")
        if device is None:
            return str(self.default_device.device_id), self.default_device.sim - 1
        sim = sms.sim if sms.sim in (1, 2) else device.sim
        return str(device.device_id), (sim or device.sim) - 1

    async def send(self, sms: OutboundSms) -> SendResult:
        device, slot = self.route(sms)
        form = {
            "sendto": sms.to,
            "body": sms.text,
            "device_id": device,
            "sim": str(slot),
            # Our outbox id: find_sent looks the SMS up by it after an interrupted send.
            "customerid": str(sms.id),
        }
        if self.config.urgent:
            form["urgent"] = "1"
        body = await self._call("addsms", form, sending=True)
        if (problem := answers.error(body)) is not None:
            raise Terminal(f"{LABEL} refused the SMS: {problem}", raw_status="error:1")
        sms_id = hooks.as_int(body.get("sms_id"))
        if sms_id is None:
            raise Ambiguous(f"{LABEL} accepted the SMS but sent no sms_id")
        return SendResult(provider_id=str(sms_id), status=Status.QUEUED, raw_status="1")

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The sms_id of ``sms`` if an interrupted send saved it: ``customerid`` carries our id,
        and number and text must match too (another program may use customerid as well)."""
        params = {
            "customerid": str(sms.id),
            "begindate": (since.astimezone(UTC).date() - _DAY).isoformat(),
        }
        body = await self._call("getallsms", params)
        if (problem := answers.error(body)) is not None:
            raise Retryable(f"{LABEL} could not list sent SMS: {problem}")
        floor = since - _CLOCK_SKEW
        for row in answers.rows(body):
            created = hooks.vendor_time(row.get("created"))
            if (
                hooks.as_int(row.get("customerid")) == sms.id
                and hooks.as_int(row.get("status")) != hooks.INCOMING
                and answers.same_number(row.get("sendto"), sms.to)
                and row.get("body") == sms.text
                and str(row["id"]) not in exclude
                and (created is None or created >= floor)
            ):
                return str(row["id"])
        return None

    # receiving --------------------------------------------------------------------------------

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        """Incoming SMS (status 5) stored on days from ``since`` on.

        Vendor: ``getallsms`` filters by ``begindate`` (a day, YYYY-MM-DD) and status [doc],
        nothing finer [doc: unknown]; its ``created`` carries an offset [code]. Assumed: the
        day is in the account's zone, which we do not know, so we ask from one day before
        ``since``'s UTC day. A phone that syncs late gets its rows stored (and dated) when it
        comes back, which the core's overlap window covers; ids are unique per SMS and the
        device webhook's ``sms_id`` is the same id (so the safety net recognises it).
        """
        begin = since.date() - _DAY
        params = {"status": str(hooks.INCOMING), "begindate": begin.isoformat(), "orderbydesc": "0"}
        body = await self._call("getallsms", params)
        if (problem := answers.error(body)) is not None:
            raise Retryable(f"{LABEL} could not list received SMS: {problem}")
        now = datetime.now(UTC)
        messages: list[InboundSms] = []
        for row in answers.rows(body):
            if hooks.as_int(row.get("status")) != hooks.INCOMING:
                continue
            sms = self._inbound(row, hooks.vendor_time(row.get("created")) or now)
            if sms is not None:
                messages.append(sms)
        return messages

    def _inbound(self, row: dict[str, Any], received: datetime) -> InboundSms | None:
        device = hooks.as_int(row.get("deviceid"))
        if str(device) not in self.devices:
            return None  # another phone of the account, not bridged here
        # For incoming rows ``sendto`` is who sent it.
        sender = phone.listed_sender(self.name, row["id"], row.get("sendto"), "sendto")
        if sender is None:
            return None
        return InboundSms(
            gateway=self.name,
            provider_id=str(row["id"]),
            sender=sender,
            text=str(row.get("body") or ""),
            received_at=received,
            device=str(device),
            sim=hooks.neutral_sim(row.get("sim")),
        )

    def webhook_docs(self) -> tuple[WebhookDoc, ...]:
        return hooks.DOCS

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents:
        return hooks.parse(self.name, self.config.webhook_token, frozenset(self.devices), request)

    # status and history -----------------------------------------------------------------------

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        updates: list[DeliveryUpdate] = []
        problems: list[str] = []
        asked = 0
        for sms in sent:
            if sms.provider_id is None or hooks.as_int(sms.provider_id) is None:
                continue
            asked += 1
            body = await self._call("getsmsstatus", {"sms_id": sms.provider_id})
            if (problem := answers.error(body)) is not None:
                # One unknown or deleted SMS must not hold up the others' statuses.
                problems.append(problem)
                log.warning("%s: no status for SMS %s: %s", self.name, sms.provider_id, problem)
                continue
            code = hooks.as_int(body.get("status"))
            if code is None:
                problems.append("answer without a status")
                continue
            description = body.get("status_description")
            mapped = hooks.map_status(code, str(description) if description else None)
            if mapped is not None:
                status, reason = mapped
                update = DeliveryUpdate(self.name, sms.provider_id, status, str(code), reason)
                updates.append(update)
        if asked and len(problems) == asked:
            raise Retryable(f"{LABEL} gave no status: {problems[-1]}")
        return updates

    async def history(self, number: str, limit: int) -> list[HistoryItem]:
        body = await self._call("getallsms", {"phone": number, "orderbydesc": "1"})
        if (problem := answers.error(body)) is not None:
            raise Terminal(f"{LABEL} could not list the conversation: {problem}")
        items = [
            HistoryItem(
                outgoing=hooks.as_int(row.get("status")) != hooks.INCOMING,
                text=str(row.get("body") or ""),
                at=hooks.vendor_time(row.get("created")),
                provider_id=str(row["id"]),
            )
            for row in answers.rows(body)
            if answers.same_number(row.get("sendto"), number)
            and str(hooks.as_int(row.get("deviceid"))) in self.devices
        ]
        return items[-limit:] if limit > 0 else []
