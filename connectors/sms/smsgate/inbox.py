"""SMSGate's inbox on the phone's local server: polling received SMS/MMS and their media."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx

from bridge import phone
from bridge.errors import RateLimited, Retryable, Terminal
from bridge.models import Attachment, InboundSms
from connectors.http import retry_after
from connectors.sms.smsgate import webhooks as hooks
from connectors.sms.smsgate.config import LABEL, SmsGateConfig
from connectors.webhooks import iso_time

PAGE = 500  # the inbox's largest page
MAX_PAGES = 40

# The gateway's authenticated calls: JSON (method, path, httpx keywords) and raw GET by path.
Call = Callable[..., Awaitable[Any]]
Get = Callable[[str], Awaitable[httpx.Response]]


class Inbox:
    """Received messages of one SMSGate phone; only its local server lists them."""

    def __init__(self, config: SmsGateConfig, api_base: str, call: Call, get: Get) -> None:
        self.config = config
        self.name = config.name
        self.api_base = api_base
        self._call = call
        self._get = get

    def media_url(self, message_id: str, part_id: int) -> str | None:
        if self.config.mode != "local" or not message_id:
            return None  # only the phone's own server hands out attachments
        return f"{self.api_base}/inbox/{message_id}/attachments/{part_id}"

    async def rows(self, since: datetime | None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            params: dict[str, str | int] = {
                "limit": PAGE,
                "offset": page * PAGE,
                "includeAttachments": "true",
            }
            if since is not None:
                params["from"] = since.isoformat().replace("+00:00", "Z")
            body = await self._call("GET", "/inbox", params=params)
            if not isinstance(body, list):
                raise Retryable(f"{LABEL} answered the inbox request with an unexpected answer")
            rows.extend(row for row in body if isinstance(row, dict))
            if len(body) < PAGE:
                break
        return rows

    def message(self, row: dict[str, Any]) -> InboundSms | None:
        """An inbox row as an SMS of ours; None for rows the bridge does not carry."""
        kind = row.get("type")
        if kind not in ("SMS", "MMS_DOWNLOADED"):
            return None  # data SMS are machine traffic; a bare MMS is downloaded later
        message_id = row.get("id")
        created = iso_time(row.get("createdAt"))
        if not message_id or created is None:
            return None
        number = phone.listed_sender(
            self.name, message_id, row.get("sender"), "sender", self.config.region
        )
        if number is None:
            return None
        attachments = tuple(
            Attachment(
                str(part.get("contentType") or "application/octet-stream"),
                str(part["name"]) if part.get("name") else None,
                url=self.media_url(str(message_id), int(part["partId"])),
            )
            for part in row.get("attachments") or []
            if isinstance(part, dict) and isinstance(part.get("partId"), int)
        )
        sim = row.get("simNumber")
        return InboundSms(
            gateway=self.name,
            provider_id=hooks.inbound_key(str(message_id), created, number),
            sender=number,
            text=str(row.get("contentPreview") or ""),
            received_at=created,
            sim=sim if isinstance(sim, int) and not isinstance(sim, bool) else None,
            attachments=attachments,
        )

    async def poll(self, since: datetime) -> list[InboundSms]:
        """Inbox rows the phone filed at or after ``since``.

        Vendor: ``GET /inbox?from=&limit=&offset=`` (local server only) filters on
        ``createdAt`` and pages by offset [doc]. Assumed: ``createdAt`` is the phone's clock
        when the SMS arrived, so a wrong phone clock shifts it, which the core's overlap
        window covers; ``id`` is unique per message on that phone.
        """
        messages = [self.message(row) for row in await self.rows(since)]
        return [sms for sms in messages if sms is not None]

    async def fetch_media(self, url: str) -> tuple[bytes, str]:
        """An MMS part from the phone; our credentials only ever go to our own gateway."""
        if not url.startswith(f"{self.api_base}/inbox/"):
            raise Terminal(f"{LABEL} cannot fetch media from another server")
        try:
            response = await self._get(url[len(self.api_base) :])
        except httpx.HTTPError as exc:
            raise Retryable(f"{LABEL} media download failed ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429:
            # The phone says when it takes requests again: retrying sooner only prolongs it.
            wait = retry_after(response)
            raise RateLimited(f"{LABEL} media download rate limit (HTTP 429)", wait)
        if status >= 500:
            raise Retryable(f"{LABEL} media download failed (HTTP {status})")
        if status >= 400:
            raise Terminal(
                f"{LABEL} refused the media download (HTTP {status})", raw_status=str(status)
            )
        content_type = response.headers.get("content-type", "application/octet-stream")
        return response.content, content_type.split(";")[0].strip()
