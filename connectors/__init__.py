"""Explicit registry of connectors: config type name -> config model and factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.confbase import ChatConfigBase, GatewayConfigBase
from bridge.ports import ChatPlatform, SmsGateway
from connectors.chat.slack import client as slack
from connectors.chat.telegram import client as telegram
from connectors.sms.ip1 import client as ip1
from connectors.sms.smsgate import client as smsgate
from connectors.sms.smsgateway24 import client as smsgateway24
from connectors.sms.smsmobileapi import client as smsmobileapi
from connectors.sms.smstools import client as smstools
from connectors.sms.twilio import client as twilio


@dataclass(frozen=True)
class GatewayKind:
    config: type[GatewayConfigBase]
    # (config, public webhook URL for this gateway or None) -> gateway; a gateway that tells
    # its vendor where to call back (SMSGate registers webhooks, iP1 sets deliveryReportUrl)
    # builds on that URL and must refuse to start without it when it needs one.
    factory: Callable[[Any, str | None], SmsGateway]


@dataclass(frozen=True)
class ChatKind:
    config: type[ChatConfigBase]
    # (config, public webhook URL for this chat or None) -> platform
    factory: Callable[[Any, str | None], ChatPlatform]
    # problems between the chats of this kind, as (index among them, message)
    check: Callable[[list[Any]], list[tuple[int, str]]] = lambda _configs: []


GATEWAYS: dict[str, GatewayKind] = {
    "ip1": GatewayKind(ip1.Ip1Config, ip1.Ip1),
    "smsgate": GatewayKind(smsgate.SmsGateConfig, smsgate.create),
    "smsgateway24": GatewayKind(
        smsgateway24.SmsGateway24Config, lambda config, _url: smsgateway24.SmsGateway24(config)
    ),
    "smsmobileapi": GatewayKind(
        smsmobileapi.SmsMobileApiConfig, lambda config, _url: smsmobileapi.SmsMobileApi(config)
    ),
    "smstools": GatewayKind(
        smstools.SmstoolsConfig, lambda config, _url: smstools.Smstools(config)
    ),
    "twilio": GatewayKind(twilio.TwilioConfig, twilio.Twilio),
}

CHATS: dict[str, ChatKind] = {
    "telegram": ChatKind(telegram.TelegramConfig, telegram.TelegramChat, telegram.check_configs),
    "slack": ChatKind(slack.SlackConfig, slack.SlackChat, slack.check_configs),
}
