"""SMSGate for Android settings: which server, which credentials, how webhooks are guarded."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, HttpUrl, SecretStr, model_validator

from bridge.confbase import GatewayConfigBase, UrlTokenMixin

LABEL = "SMSGate"  # the vendor's name in errors and logs, shared by the smsgate modules
CLOUD_URL = "https://api.sms-gate.app"
CLOUD_PREFIX = "/3rdparty/v1"


class SmsGateConfig(GatewayConfigBase, UrlTokenMixin):
    type: Literal["smsgate"]
    mode: Literal["local", "cloud"] = "cloud"
    # local: http://<phone>:8080; cloud: the public cloud or a private server's root URL.
    base_url: HttpUrl | None = None
    auth: Literal["basic", "jwt"] = "basic"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None  # a ready JWT; else auth: jwt obtains one with the password
    signing_key: SecretStr | None = None  # the app's Settings -> Webhooks -> Signing Key
    webhook_token: SecretStr | None = None  # POST /webhooks/sms/<name>/<token>
    register_webhooks: bool = False
    device_id: str | None = Field(default=None, max_length=21)
    sim: int | None = Field(default=None, ge=1, le=3)
    # The phone reports numbers as its SIM sees them, often national ("6505551212"): the
    # country they belong to, as an ISO 3166 code ("US"), makes them E.164.
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    # Our outbox id follows it to make the vendor's idempotency key (≤ 36 characters).
    message_id_prefix: str = Field(
        default="smsbridge-", max_length=20, pattern=r"^[A-Za-z0-9_.-]*$"
    )
    with_delivery_report: bool = True
    ttl: int | None = Field(default=None, ge=5)
    priority: int | None = Field(default=None, ge=-128, le=127)
    skip_phone_validation: bool = False
    max_clock_skew: float = Field(default=300.0, gt=0, le=3600)
    # Off, and only off: see _one_way_in.
    safety_poll_interval: float = Field(default=0.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        # The app's webhook `messageId` and its inbox `id` are made differently (and neither
        # is unique: both derive from the text), and whether the webhook's `receivedAt` is the
        # inbox's `createdAt` to the millisecond is not documented. So an SMS seen both ways
        # could not be recognised as one and would be posted twice. The app retries a webhook
        # for about two days, which is the safety net here.
        if self.receive == "both":
            raise ValueError(
                "receive: both is not possible with SMSGate (a webhook SMS and the same SMS in "
                "the phone's inbox carry different ids, so each would be posted twice): use "
                "receive: poll (mode: local) or receive: webhook"
            )
        if self.receive == "webhook" and self.safety_poll_interval:
            raise ValueError(
                "safety_poll_interval must be 0 with SMSGate (the inbox ids differ from the "
                "webhook's, so the safety-net poll would post each SMS twice; the app itself "
                "retries a webhook for about two days)"
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.mode == "local" and self.base_url is None:
            raise ValueError("mode: local needs base_url (the phone's address, http://<ip>:8080)")
        if self.token is None and (self.username is None or self.password is None):
            raise ValueError("needs username and password (or token with auth: jwt)")
        if self.token is not None and self.auth != "jwt":
            raise ValueError("token is a JWT: set auth: jwt (or use username and password)")
        if self.auth == "jwt" and self.mode == "local":
            raise ValueError("the phone's local server only takes auth: basic")
        if self.polls and self.mode != "local":
            raise ValueError(
                f"receive: {self.receive} needs mode: local (the cloud server has no inbox to "
                "poll; use receive: webhook)"
            )
        if self.takes_webhooks and self.signing_key is None and self.webhook_token is None:
            raise ValueError(
                f"receive: {self.receive} needs signing_key (recommended) or webhook_token"
            )
        if self.register_webhooks and not self.takes_webhooks:
            raise ValueError("register_webhooks needs receive: webhook")
        return self

    @property
    def api_base(self) -> str:
        root = str(self.base_url or CLOUD_URL).rstrip("/")
        if self.mode == "local":
            return root
        return root if root.endswith(CLOUD_PREFIX) else root + CLOUD_PREFIX
