"""The neutral model: frozen dataclasses that cross the boundary between core and connectors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    """Delivery status of an outbound SMS, common to every gateway."""

    PENDING = "pending"  # in our outbox, the gateway has not accepted it yet
    QUEUED = "queued"  # the gateway (or its phone) accepted it
    SENT = "sent"  # handed to the carrier / sent by the phone
    DELIVERED = "delivered"  # a handset receipt exists
    FAILED = "failed"  # terminal failure

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    Status.PENDING: 0,
    Status.QUEUED: 1,
    Status.SENT: 2,
    Status.FAILED: 3,
    Status.DELIVERED: 4,
}


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with an inbound message (an MMS image, say).

    Either ``data`` holds the content (the gateway sent it inline), or ``url`` says where the
    gateway keeps it; such a gateway implements ``FetchesMedia`` when the URL needs its
    credentials.
    """

    content_type: str
    name: str | None = None
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class InboundSms:
    """An SMS received by a gateway, normalised."""

    gateway: str
    provider_id: str  # the gateway's stable id (de-duplication key)
    sender: str  # E.164, or the raw sender when it is not a phone number (short codes, names)
    text: str
    received_at: datetime
    alias: str | None = None
    device: str | None = None
    sim: int | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A status change of an outbound SMS reported by a gateway."""

    gateway: str
    provider_id: str
    status: Status
    raw_status: str
    reason: str | None = None
    event_id: str | None = None  # de-duplication key of the event itself, when the gateway has one


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    """A file to send with an SMS (MMS): the gateway fetches it from ``url``, which the
    bridge serves (``/media/<token>``) until it expires."""

    url: str
    content_type: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """An SMS for a gateway to send; ``id`` is ours and stable across retries."""

    id: int
    to: str
    text: str
    device: str | None = None
    sim: int | None = None
    media: tuple[OutboundMedia, ...] = ()  # only for gateways that implement ``SendsMedia``


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the gateway said when it accepted an SMS."""

    provider_id: str | None
    status: Status = Status.QUEUED
    raw_status: str = ""


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One message of a conversation kept by the gateway (for backfill)."""

    outgoing: bool
    text: str
    at: datetime | None
    provider_id: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An HTTP request to a gateway webhook, stripped of the web framework."""

    gateway: str
    token: str | None  # the secret path segment, for gateways that sign nothing
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float  # unix time, for signature windows
    # The URL as the sender called it (built on server.public_url when set, since a proxy
    # changes what we see), with its query string: Twilio signs it.
    url: str = ""
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookEvents:
    """What a webhook carried, translated."""

    inbound: tuple[InboundSms, ...] = ()
    updates: tuple[DeliveryUpdate, ...] = ()
    event_id: str | None = None  # envelope id, de-duplicated by the core
    ignored: str | None = None  # a reason when the event is valid but not for us


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What to answer a webhook with, when its sender expects more than our JSON."""

    body: bytes
    media_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True, slots=True)
class WebhookDoc:
    """One webhook a connector serves, as ``bridge/openapi.py`` documents it.

    ``security`` names OpenAPI security schemes (with their definitions) that must all hold;
    ``token`` says the endpoint sits under the secret URL token instead, which OpenAPI cannot
    describe as a scheme. ``bodies`` maps media types to JSON Schemas of what the sender posts;
    ``answer`` is what the sender gets back (media type -> schema) when it is not our JSON
    status.
    """

    summary: str
    token: bool = False
    methods: tuple[str, ...] = ("POST",)
    security: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    parameters: tuple[Mapping[str, Any], ...] = ()
    answer: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChatUser:
    """Who wrote a chat message."""

    id: str
    name: str
    is_bot: bool = False


# The bridge's commands (bridge/desk.py). Where a platform has no commands in threads (Slack),
# its connector reads ``!word`` as ``/word`` for these words only, alone or (``ARGUMENTS``)
# followed by their arguments: any other text with a leading ``!`` is a reply.
COMMAND_WORDS = frozenset(
    {"sms", "help", "name", "status", "history", "retry", "close", "reopen", "block", "unblock"}
)
COMMAND_ARGUMENTS = frozenset({"sms", "name"})


@dataclass(frozen=True, slots=True)
class ChatFile:
    """A photo or document a person posted; ``ref`` is what the platform downloads it by
    (Telegram's file_id, Slack's url_private), for a chat that implements ``FetchesFiles``."""

    ref: str
    content_type: str
    name: str | None = None
    size: int | None = None  # bytes, when the platform says before the download


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A human message seen in a chat, translated from the platform's update."""

    chat: str  # our chat name from the config
    message_id: str
    thread_id: str | None  # topic / thread, when the platform has one and the message is in it
    reply_to: str | None  # message id it answers, if any
    user: ChatUser
    text: str | None  # None for media or service messages
    edited: bool = False
    deleted: bool = False  # a person deleted ``message_id`` (it may be one of our posts)
    # Seen by its author alone (a Slack slash command): answered to them alone, where the
    # platform can (``PostsPrivately``); no status shows on it, nobody can reply to it.
    private: bool = False
    has_media: bool = False
    files: tuple[ChatFile, ...] = ()  # of the media, what could go out as MMS
    event_id: str | None = None  # platform delivery id (update_id), for de-duplication
    # The title of the bridge's own thread, or the text of the bridge's own post replied to:
    # lets a reply find its number even if the store's mapping was not committed yet.
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """One phone number as seen through one gateway."""

    id: int
    gateway: str
    number: str
    alias: str | None = None
    device: str | None = None
    sim: int | None = None


@dataclass(frozen=True, slots=True)
class Outbox:
    """A stored outbound SMS and where it is shown."""

    id: int
    conversation_id: int
    gateway: str
    to: str
    text: str
    status: Status
    provider_id: str | None = None
    attempts: int = 0
    device: str | None = None
    sim: int | None = None
    raw_status: str | None = None
    reason: str | None = None
    attempt_started_at: datetime | None = None
    mirrors: tuple[tuple[str, str], ...] = field(default=())  # (chat, message_id)

    def to_outbound(self) -> OutboundSms:
        return OutboundSms(id=self.id, to=self.to, text=self.text, device=self.device, sim=self.sim)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What a gateway says about one of its phones (or its account), for the watchdog.

    ``None`` is "the vendor does not say": the watchdog then judges by what it does say
    (``last_seen`` against ``down_after``, or nothing at all).
    """

    device: str
    online: bool | None = None
    battery: int | None = None  # percent
    last_seen: datetime | None = None  # UTC
