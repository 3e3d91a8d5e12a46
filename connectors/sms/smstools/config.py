"""Smstools settings: credentials, the sender, the inbox to poll and how webhooks are guarded."""

from __future__ import annotations

import re
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from bridge.confbase import GatewayConfigBase, UrlTokenMixin

_SENDER_NAME = re.compile(r"^[A-Za-z0-9]{1,11}$")
_SENDER_NUMBER = re.compile(r"^\+[0-9]{3,13}$")


class SmstoolsConfig(GatewayConfigBase, UrlTokenMixin):
    type: Literal["smstools"]
    client_id: SecretStr
    client_secret: SecretStr
    # Required by the vendor: "+32460260667" (a number, with its "+") or a name of <= 11 letters
    # or digits. Replies to an SMS leave from the number it was sent to, when that is a number.
    sender: str
    base_url: HttpUrl = HttpUrl("https://api.smsgatewayapi.com")
    webhook_token: SecretStr | None = None  # POST /webhooks/sms/<name>/<token>
    inbox: str | None = None  # poll one inbox number only (/v1/message/inbox/<inbox>)
    # Of the inbox's zone-less dates: undocumented, UTC in the vendor's own example. Only
    # shown dates depend on it; what is new never does.
    timezone: str = "UTC"
    page_size: int = Field(default=1000, ge=1, le=2000)
    fetch_attachments: bool = True  # look up images of polled SMS in their conversation
    # Off, and only off: the safety net tells what the webhooks missed by the inbox ID, which
    # the inbox_message webhook does not carry (see _receive_ok).
    safety_poll_interval: float = Field(default=0.0, ge=0, le=86400)

    @field_validator("sender")
    @classmethod
    def _sender_ok(cls, value: str) -> str:
        if _SENDER_NUMBER.match(value) or (_SENDER_NAME.match(value) and not value.isdigit()):
            return value
        if value.lstrip("+").isdigit():
            raise ValueError("a sender number must start with '+' and have at most 13 digits")
        raise ValueError("a sender name is 1 to 11 letters or digits, nothing else")

    @field_validator("timezone")
    @classmethod
    def _zone_ok(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Brussels)") from None
        return value

    @model_validator(mode="after")
    def _receive_ok(self) -> Self:
        if self.receive == "both":
            # A polled SMS is keyed by its inbox ID; the inbox_message webhook carries no ID,
            # so its key is made from content and time. The two keys never agree, and every
            # SMS would reach the chat twice.
            raise ValueError(
                "receive: both is not possible with Smstools (the inbox_message webhook "
                "carries no inbox ID, so a polled SMS and the same SMS by webhook cannot be "
                "recognised as one and each would be posted twice): use receive: poll or "
                "receive: webhook"
            )
        if self.receive == "webhook" and self.safety_poll_interval:
            raise ValueError(
                "safety_poll_interval must be 0 with Smstools (the inbox_message webhook "
                "carries no inbox ID, so the safety-net poll could not tell which SMS the "
                "webhooks delivered and would post each one twice)"
            )
        if self.takes_webhooks and self.webhook_token is None:
            raise ValueError(
                f"receive: {self.receive} needs webhook_token (Smstools signs nothing, so the "
                "secret in the webhook URL is what authenticates it)"
            )
        return self
