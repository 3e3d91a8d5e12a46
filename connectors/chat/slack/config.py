"""Slack chat config (Events API or Socket Mode); no Slack library here, so validating a
config never imports slack_sdk, slack_bolt or aiohttp."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator

from bridge.confbase import ChatConfigBase, Strict, shared_tokens
from bridge.pacing import Rate


class Window(Strict):
    messages: int = Field(ge=1)
    seconds: float = Field(gt=0)

    def rate(self) -> Rate:
        return Rate(self.messages, self.seconds)


class SlackPacing(Strict):
    """Defaults are Slack's published limits."""

    channel: Window = Window(messages=1, seconds=1)  # chat.postMessage: ~1 per second per channel
    reactions: Window = Window(messages=20, seconds=60)  # reactions.remove is a Tier 2 method


class SlackConfig(ChatConfigBase):
    type: Literal["slack"]
    bot_token: SecretStr
    signing_secret: SecretStr | None = None  # Events API over HTTP: POST /webhooks/slack/<name>
    app_token: SecretStr | None = None  # when set, Socket Mode (no public URL needed)
    channel: str = Field(pattern=r"^[CG][A-Z0-9]{2,}$")
    base_url: HttpUrl = HttpUrl("https://slack.com/api/")
    allowed_user_ids: list[str] = Field(default_factory=list)  # empty: everyone in the channel
    pacing: SlackPacing = SlackPacing()
    timeout: float = Field(default=15.0, gt=0, le=300)

    @field_validator("bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token (xoxb-…, OAuth & Permissions)")
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (xapp-…, with connections:write)")
        return value

    @field_validator("allowed_user_ids")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        for user in value:
            if user[:1] not in ("U", "W") or not user.isalnum():
                raise ValueError(f"{user!r} is not a Slack user id (U… or W…)")
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> Self:
        if self.signing_secret is None and self.app_token is None:
            raise ValueError("set signing_secret (Events API) or app_token (Socket Mode)")
        return self


def check_configs(configs: list[SlackConfig]) -> list[tuple[int, str]]:
    """One Slack app per chat: an app has one Request URL, and Socket Mode spreads its events
    over all open connections, so two chats sharing an app would each miss some."""
    return shared_tokens(configs, "bot_token", "Slack app")
