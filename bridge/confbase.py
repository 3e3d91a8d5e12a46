"""Base pydantic models that every connector's config extends, and what the core reads from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Strict(BaseModel):
    """A config section: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        # `${VAR:-}` expands to "": for an optional key that means "not set", not "empty".
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if field.default is None}
        return {k: (None if v == "" and k in optional else v) for k, v in data.items()}


class GatewayConfigBase(Strict):
    """Keys the core needs from any gateway section."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str

    @property
    def personal(self) -> bool:
        """One person's chat without threads: what they write outside an SMS is for us."""
        return False

    receive: Literal["poll", "webhook", "both"] = "poll"
    poll_interval: float = Field(default=15.0, gt=0, le=86400)
    status_poll_interval: float = Field(default=60.0, gt=0, le=86400)
    timeout: float = Field(default=15.0, gt=0, le=300)
    # Listing (where the gateway can list what it received; see bridge/polling.py):
    # the very first poll bridges only this far back, not the phone's whole history;
    first_poll_lookback: float = Field(default=3600.0, ge=0, le=30 * 86400)
    # every poll asks again this far before the previous one, for rows that show up late
    # (a phone that was offline for hours, a slow upload, a wrong clock);
    poll_overlap: float = Field(default=86400.0, ge=0, le=30 * 86400)
    # with receive: webhook, a poll this often over the last safety_poll_window seconds
    # finds what the webhooks missed (0 turns it off).
    safety_poll_interval: float = Field(default=600.0, ge=0, le=86400)
    safety_poll_window: float = Field(default=7200.0, gt=0, le=30 * 86400)
    # Watchdog (bridge/watchdog.py): checked every watch_interval seconds; an incident is
    # the phone offline (or unseen for down_after), its battery under battery_low percent, no
    # inbound SMS for silence_after seconds (off unless set), sends_failing_after failed sends
    # in a row, or the gateway's API failing for longer than down_after.
    watch_interval: float = Field(default=60.0, gt=0, le=86400)
    silence_after: float | None = Field(default=None, gt=0, le=90 * 86400)
    down_after: float = Field(default=300.0, gt=0, le=7 * 86400)
    battery_low: int = Field(default=15, ge=0, le=100)
    sends_failing_after: int = Field(default=3, ge=1, le=1000)

    @property
    def polls(self) -> bool:
        return self.receive in ("poll", "both")

    @property
    def takes_webhooks(self) -> bool:
        return self.receive in ("webhook", "both")


class ChatConfigBase(Strict):
    """Keys the core needs from any chat section."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str

    @property
    def personal(self) -> bool:
        """One person's chat without threads: what they write outside an SMS is for us."""
        return False


def check_url_token(value: SecretStr | None) -> SecretStr | None:
    """A secret that travels in a URL path must be long and URL-safe."""
    if value is None:
        return None
    secret = value.get_secret_value()
    if len(secret) < 16:
        raise ValueError("must be at least 16 characters (it is the only thing guarding the URL)")
    if not all(c.isalnum() or c in "-_" for c in secret):
        raise ValueError("may only contain letters, digits, '-' and '_'")
    return value


class UrlTokenMixin(BaseModel):
    """Adds the ``webhook_token`` check to a config model."""

    @field_validator("webhook_token", check_fields=False)
    @classmethod
    def _token_ok(cls, value: SecretStr | None) -> SecretStr | None:
        return check_url_token(value)


def shared_tokens(
    configs: Sequence[ChatConfigBase], token: str, what: str
) -> list[tuple[int, str]]:
    """Chats of one kind that reuse another's ``token`` field: the platform gives each
    credential one stream of updates, so two chats on one would each miss some."""
    problems: list[tuple[int, str]] = []
    owners: dict[str, str] = {}
    for index, config in enumerate(configs):
        secret = getattr(config, token).get_secret_value()
        if secret in owners:
            problems.append(
                (index, f"uses the same {what} as chat {owners[secret]!r}; give each its own")
            )
        owners.setdefault(secret, config.name)
    return problems
