"""Telegram chat config: what the bridge needs to know about one bot and one chat.

Kept apart from the client so that validating a config never imports python-telegram-bot.
"""

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


class TelegramPacing(Strict):
    """Defaults are Telegram's published limits (raise them only for a local Bot API server)."""

    chat: Window = Window(messages=1, seconds=1)  # any one chat
    group: Window = Window(messages=20, seconds=60)  # one group: all its topics together
    overall: Window = Window(messages=30, seconds=1)  # the whole bot


class TelegramConfig(ChatConfigBase):
    type: Literal["telegram"]
    bot_token: SecretStr
    chat_id: int
    base_url: HttpUrl = HttpUrl("https://api.telegram.org")
    allowed_user_ids: list[int] = Field(default_factory=list)
    threads: Literal["auto", "topics", "replies"] = "auto"  # auto: topics in groups
    transport: Literal["auto", "polling", "webhook"] = "auto"  # auto: webhook if public_url
    webhook_secret: SecretStr | None = None  # default: derived from the bot token
    pacing: TelegramPacing = TelegramPacing()
    poll_timeout: int = Field(default=30, ge=0, le=50)
    timeout: float = Field(default=15.0, gt=0, le=300)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        bot_id, _, rest = value.get_secret_value().partition(":")
        if not bot_id.isdigit() or not rest:
            raise ValueError("must look like 123456:ABC… (from @BotFather)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_charset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not 1 <= len(secret) <= 256 or not all(c.isalnum() or c in "_-" for c in secret):
                raise ValueError("1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _threads_fit_chat(self) -> Self:
        if self.threads == "topics" and self.chat_id > 0:
            raise ValueError("threads: topics needs a forum supergroup (a negative chat_id)")
        return self

    @property
    def threaded(self) -> bool:
        return self.threads == "topics" or (self.threads == "auto" and self.chat_id < 0)

    @property
    def personal(self) -> bool:
        """A private chat (a positive chat id is a person's) without topics."""
        return self.chat_id > 0 and not self.threaded


def check_configs(configs: list[TelegramConfig]) -> list[tuple[int, str]]:
    """One bot per chat: Telegram gives a bot one update stream (one getUpdates, one webhook)."""
    return shared_tokens(configs, "bot_token", "bot")
