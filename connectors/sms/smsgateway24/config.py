"""SmsGateway24 settings: login or token, the account's devices, how webhooks are guarded."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, HttpUrl, SecretStr, model_validator

from bridge.confbase import GatewayConfigBase, Strict, UrlTokenMixin


class DeviceConfig(Strict):
    device_id: int = Field(gt=0)  # "Device ID" on the vendor's device page
    sim: Literal[1, 2] = 1  # SIM a new conversation uses (the API's slot 0 or 1)


class SmsGateway24Config(GatewayConfigBase, UrlTokenMixin):
    type: Literal["smsgateway24"]
    base_url: HttpUrl = HttpUrl("https://smsgateway24.com/getdata")
    email: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None  # an API token copied from the profile, instead of a login
    # The first device is the one new conversations (/sms) use; SMS received by a device not
    # listed here are not bridged.
    devices: list[DeviceConfig] = Field(min_length=1)
    webhook_token: SecretStr | None = None  # device webhooks: /webhooks/sms/<name>/<token>
    token_max_age: float = Field(default=12 * 3600.0, gt=0)  # lifetime undocumented: log in anew
    urgent: bool = False  # the vendor's priority flag, meant for one-time passwords

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.email is None) != (self.password is None):
            raise ValueError("email and password go together (both, or use token)")
        if self.email is None and self.token is None:
            raise ValueError("needs email and password (to log in), or token (from the profile)")
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("devices: each device_id may appear only once")
        if self.takes_webhooks and self.webhook_token is None:
            raise ValueError(
                f"receive: {self.receive} needs webhook_token (the vendor signs nothing, so the "
                "secret in the webhook URL is what authenticates it)"
            )
        return self
