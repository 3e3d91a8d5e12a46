"""The registry of connectors: a config ``type`` -> where its config model, factory, fake and
example live, one line per connector.

Each connector is a package (``connectors/sms/<gateway>/``, ``connectors/chat/<platform>/``)
whose ``__init__`` imports nothing. The registry names its parts as ``"module:attribute"``
strings inside that package and imports them on first use, so a process loads only the
connectors its config names: a bridge with Telegram and one gateway never imports the Slack
libraries (slack_bolt, slack_sdk, aiohttp), and validating a config imports only the config
modules of the types it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from bridge.confbase import ChatConfigBase, GatewayConfigBase
from bridge.ports import ChatPlatform, SmsGateway

ConfigT = TypeVar("ConfigT", GatewayConfigBase, ChatConfigBase)


@dataclass(frozen=True)
class _Kind(Generic[ConfigT]):
    package: str  # under connectors/, e.g. "sms.smstools"
    config_at: str  # "module:attribute" of the pydantic model that validates a config section
    factory_at: str  # ... of the callable that builds the connector from that model
    fake_at: str  # ... of the loopback fake of the remote, for tests, benchmarks and the demo

    def _load(self, where: str) -> Any:
        module, _, attribute = where.partition(":")
        return getattr(importlib.import_module(f"connectors.{self.package}.{module}"), attribute)

    def _model(self, base: type[ConfigT]) -> type[ConfigT]:
        model = self._load(self.config_at)
        if not (isinstance(model, type) and issubclass(model, base)):
            raise TypeError(f"{self.package}: {self.config_at} is not a {base.__name__}")
        return model

    @property
    def example(self) -> Path:
        """A complete config using this connector, loaded by a test so that it cannot rot."""
        return Path(__file__).parent.joinpath(*self.package.split("."), "example.yaml")

    @property
    def fake(self) -> type[Any]:
        fake: type[Any] = self._load(self.fake_at)
        return fake


@dataclass(frozen=True)
class GatewayKind(_Kind[GatewayConfigBase]):
    # False when the factory takes the config alone; otherwise it also gets the public URL of
    # this gateway's webhook (or None): a gateway that tells its vendor where to call back
    # (SMSGate registers webhooks, iP1 sets deliveryReportUrl) builds on that URL and must
    # refuse to start without it when it needs one.
    takes_url: bool = True

    @property
    def config(self) -> type[GatewayConfigBase]:
        return self._model(GatewayConfigBase)

    def factory(self, config: GatewayConfigBase, public_url: str | None) -> SmsGateway:
        make = cast(Callable[..., SmsGateway], self._load(self.factory_at))
        return make(config, public_url) if self.takes_url else make(config)


@dataclass(frozen=True)
class ChatKind(_Kind[ChatConfigBase]):
    # "module:attribute" of a check of all chats of this kind together, giving problems as
    # (index among them, message); it lives next to the config model, away from the client.
    check_at: str | None = None

    @property
    def config(self) -> type[ChatConfigBase]:
        return self._model(ChatConfigBase)

    def factory(self, config: ChatConfigBase, webhook_url: str | None) -> ChatPlatform:
        make = cast(Callable[[Any, str | None], ChatPlatform], self._load(self.factory_at))
        return make(config, webhook_url)

    def check(self, configs: list[ChatConfigBase]) -> list[tuple[int, str]]:
        if self.check_at is None:
            return []
        found: list[tuple[int, str]] = self._load(self.check_at)(configs)
        return found


GATEWAYS: dict[str, GatewayKind] = {
    "ip1": GatewayKind("sms.ip1", "client:Ip1Config", "client:Ip1", "fake:FakeIp1"),
    "smsgate": GatewayKind(
        "sms.smsgate", "config:SmsGateConfig", "client:create", "fake:FakeSmsGate"
    ),
    "smsgateway24": GatewayKind(
        "sms.smsgateway24",
        "config:SmsGateway24Config",
        "client:SmsGateway24",
        "fake:FakeSmsGateway24",
        takes_url=False,
    ),
    "smsmobileapi": GatewayKind(
        "sms.smsmobileapi",
        "client:SmsMobileApiConfig",
        "client:SmsMobileApi",
        "fake:FakeSmsMobileApi",
        takes_url=False,
    ),
    "smstools": GatewayKind(
        "sms.smstools",
        "config:SmstoolsConfig",
        "client:Smstools",
        "fake:FakeSmstools",
        takes_url=False,
    ),
    "twilio": GatewayKind("sms.twilio", "client:TwilioConfig", "client:Twilio", "fake:FakeTwilio"),
}

CHATS: dict[str, ChatKind] = {
    "telegram": ChatKind(
        "chat.telegram",
        "config:TelegramConfig",
        "client:create",
        "fake:FakeTelegram",
        check_at="config:check_configs",
    ),
    "slack": ChatKind(
        "chat.slack",
        "config:SlackConfig",
        "client:SlackChat",
        "fake:FakeSlack",
        check_at="config:check_configs",
    ),
}
