"""The phone's side of the SMSGate fake: what it keeps, and the signed webhooks it sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from bridge.testing.fake_base import LoopbackFake, RecordT

DEVICE_ID = "yVULogr4Y1ksRfnos1Dsw"  # cloud device ids are 21 characters
PHONE_TZ = timezone(timedelta(hours=7))  # the phone reports local times with their offset


@dataclass
class Message:
    """An outgoing message as the gateway keeps it."""

    id: str
    phone_numbers: list[str]
    text: str
    sim: int | None
    device_id: str
    state: str = "Pending"
    states: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def parts(self) -> int:
        # GSM-7 fits 160 per SMS (153 when split); anything else is UCS-2 (70 / 67).
        single, multi = (160, 153) if self.text.isascii() else (70, 67)
        return 1 if len(self.text) <= single else -(-len(self.text) // multi)


@dataclass
class Incoming:
    """A message that reached the phone (a row of ``GET /inbox``)."""

    id: str  # content-based, like the app's: the same text from the same sender repeats it
    type: str
    sender: str
    text: str
    sim: int | None
    at: datetime
    attachments: list[tuple[int, str, str, bytes]] = field(default_factory=list)


def stamp(at: datetime, tz: timezone = UTC) -> str:
    text = at.astimezone(tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def sign(key: str, body: bytes, timestamp: int) -> str:
    """``hex(HMAC-SHA256(key, raw body + X-Timestamp))``, as the app's signing plugin does."""
    return hmac.new(key.encode(), body + str(timestamp).encode(), hashlib.sha256).hexdigest()


class PhoneMixin(LoopbackFake[RecordT]):
    """Inbound messages, state changes and webhook delivery of :class:`FakeSmsGate`."""

    signing_key: str
    messages: dict[str, Message]
    inbox: list[Incoming]
    webhooks: dict[str, dict[str, str]]

    def _conform(self, schema: str, value: Any) -> None:
        raise NotImplementedError

    def receive_sms(
        self, sender: str, text: str, *, sim: int | None = 1, at: datetime | None = None
    ) -> Incoming:
        return self._incoming("SMS", sender, text, sim, at, [])

    def receive_mms(
        self, sender: str, text: str, files: list[tuple[str, str, bytes]], *, sim: int | None = 1
    ) -> Incoming:
        """An MMS the phone downloaded; ``files`` are (name, content type, bytes)."""
        parts = [(100 + i, name, kind, data) for i, (name, kind, data) in enumerate(files)]
        return self._incoming("MMS_DOWNLOADED", sender, text, sim, None, parts)

    def _incoming(
        self,
        kind: str,
        sender: str,
        text: str,
        sim: int | None,
        at: datetime | None,
        parts: list[tuple[int, str, str, bytes]],
    ) -> Incoming:
        digest = hashlib.sha256(f"{sender}|{text}".encode()).digest()
        message_id = base64.urlsafe_b64encode(digest).decode()[:21]
        when = (at or datetime.now(UTC)).replace(microsecond=0)
        row = Incoming(message_id, kind, sender, text, sim, when, parts)
        self.inbox.append(row)
        return row

    def set_state(self, message_id: str, state: str, error: str | None = None) -> Message:
        message = self.messages[message_id]
        message.state, message.error = state, error
        message.states[state] = stamp(datetime.now(UTC))
        return message

    # webhooks to the bridge -------------------------------------------------------------------

    async def deliver(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        url: str | None = None,
        event_id: str | None = None,
        timestamp: int | None = None,
        key: str | None = None,
        body: bytes | None = None,
    ) -> list[httpx.Response]:
        """POST a signed event to ``url`` or to every webhook registered for it."""
        targets = (
            [(url, "manual")]
            if url
            else [
                (hook["url"], hook["id"])
                for hook in self.webhooks.values()
                if hook["event"] == event
            ]
        )
        assert targets, f"no webhook registered for {event}"
        answers = []
        for target, hook_id in targets:
            envelope = {
                "deviceId": DEVICE_ID,
                "event": event,
                "id": event_id or secrets.token_urlsafe(15)[:21],
                "webhookId": hook_id,
                "payload": payload,
            }
            self._conform("WebHookEvent", envelope)
            raw = json.dumps(envelope).encode() if body is None else body
            ts = int(time.time()) if timestamp is None else timestamp
            headers = {
                "X-Timestamp": str(ts),
                "X-Signature": sign(self.signing_key if key is None else key, raw, ts),
            }
            answers.append(await self.post_json(target, raw, headers))
        return answers

    def received_payload(self, row: Incoming, *, inline: bool = True) -> dict[str, Any]:
        """``sms:received`` / ``mms:downloaded`` payload for an inbox row."""
        payload: dict[str, Any] = {
            "messageId": row.id,
            "sender": row.sender,
            "recipient": None,
            "phoneNumber": row.sender,
            "simNumber": row.sim,
            "receivedAt": stamp(row.at, PHONE_TZ),
        }
        if row.type == "SMS":
            self._conform("SmsReceivedPayload", payload | {"message": row.text})
            return payload | {"message": row.text}
        files = [
            {
                "partId": part,
                "contentType": kind,
                "name": name,
                "size": len(data),
                "data": base64.b64encode(data).decode() if inline else None,
            }
            for part, name, kind, data in row.attachments
        ]
        payload |= {"body": row.text, "subject": None, "attachments": files}
        self._conform("MmsDownloadedPayload", payload)
        return payload

    async def deliver_received(self, row: Incoming, **kw: Any) -> list[httpx.Response]:
        event = "sms:received" if row.type == "SMS" else "mms:downloaded"
        return await self.deliver(
            event, self.received_payload(row, inline=kw.pop("inline", True)), **kw
        )

    def status_payload(
        self, message: Message, event: str, reason: str | None = None
    ) -> dict[str, Any]:
        at = stamp(datetime.now(UTC), PHONE_TZ)
        payload: dict[str, Any] = {
            "messageId": message.id,
            "sender": None,
            "recipient": message.phone_numbers[0],
            "phoneNumber": message.phone_numbers[0],
            "simNumber": message.sim,
            "partsCount": message.parts,
        }
        payload[{"sms:sent": "sentAt", "sms:delivered": "deliveredAt"}.get(event, "failedAt")] = at
        if event == "sms:failed":
            payload["reason"] = reason or "RESULT_ERROR_GENERIC_FAILURE"
        return payload

    async def report(
        self,
        message_id: str,
        event: str,
        *,
        reason: str | None = None,
        parts: int | None = None,
        **kw: Any,
    ) -> list[httpx.Response]:
        """The phone's status events; ``sms:delivered`` fires once per part (``parts`` of them)."""
        message = self.messages[message_id]
        state = {"sms:sent": "Sent", "sms:delivered": "Delivered", "sms:failed": "Failed"}[event]
        answers = []
        for _ in range(
            parts if parts is not None else message.parts if state == "Delivered" else 1
        ):
            answers += await self.deliver(event, self.status_payload(message, event, reason), **kw)
        if parts is None or parts >= message.parts:
            self.set_state(message_id, state, reason)
        return answers


class DeviceMixin:
    """The phone's health (local server ``GET /health``) and the account's device list (cloud
    ``GET /devices``), with state tests change: battery, signal, when the app last called in.

    ``/health`` follows the spec's HealthResponse; the check names and units are the app's
    (HealthService: ``battery:level`` in percent, ``battery:charging``, ``connection:status``)
    [code], OUR READING. It answers 503 when a check fails, as the spec documents.
    """

    battery = 87
    charging = False
    online = True  # connection:status
    last_seen: float | None = None  # unix time the phone last reached the cloud; None: now

    def health_body(self) -> tuple[dict[str, Any], int]:
        def check(value: int, unit: str, ok: bool, what: str) -> dict[str, Any]:
            return {
                "observedValue": value,
                "observedUnit": unit,
                "description": what,
                "status": "pass" if ok else "fail",
            }

        checks = {
            "battery:level": check(self.battery, "percent", self.battery >= 10, "Battery level"),
            "battery:charging": check(int(self.charging), "boolean", True, "Is charging"),
            "connection:status": check(int(self.online), "boolean", self.online, "Connected"),
        }
        ok = all(c["status"] == "pass" for c in checks.values())
        body = {
            "status": "pass" if ok else "fail",
            "version": "1.30.0",
            "releaseId": 1,
            "checks": checks,
        }
        return body, 200 if ok else 503

    def devices_body(self) -> list[dict[str, Any]]:
        seen = datetime.fromtimestamp(self.last_seen or time.time(), UTC)
        return [
            {
                "id": DEVICE_ID,
                "name": "Office phone",
                "createdAt": "2025-01-01T00:00:00Z",
                "updatedAt": stamp(seen),
                "lastSeen": stamp(seen),
            }
        ]
