"""Protocols the core depends on: gateways (with optional capabilities) and chat platforms."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, cast, runtime_checkable

from bridge.models import (
    ChatFile,
    ChatMessage,
    ChatUser,
    DeliveryUpdate,
    DeviceStatus,
    HistoryItem,
    InboundSms,
    OutboundSms,
    Outbox,
    SendResult,
    Status,
    WebhookAnswer,
    WebhookDoc,
    WebhookEvents,
    WebhookRequest,
)
from bridge.pacing import Rate


class SmsGateway(Protocol):
    """What every gateway does: send. Errors are ``bridge.errors.DeliveryError`` subclasses."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, sms: OutboundSms) -> SendResult: ...


@runtime_checkable
class PollsInbound(Protocol):
    """Can list the SMS it received: for ``receive: poll``, and the safety net under webhooks.

    The core owns the window and the de-duplication (``bridge/polling.py``): it asks from a
    moment by its own clock, and drops provider ids it already has. So a connector never
    keeps a cursor of the vendor's dates, which a late row or a wrong clock would skip.
    """

    # How far the vendor's dates may be from the true instant, in seconds: 0 where they are
    # absolute (unix time, ISO with offset); ``listing.ZONE_MARGIN`` where they carry no zone.
    date_margin: float

    async def poll_inbound(self, since: datetime) -> list[InboundSms]:
        """The SMS received at or after ``since`` (UTC), in any order, as far as the vendor
        can list them. Older ones and ones already bridged may come too."""
        ...


@runtime_checkable
class CompletesPolled(Protocol):
    """Adds what a listing leaves out (Smstools: images) to the rows the core found new."""

    async def complete_polled(self, messages: list[InboundSms]) -> list[InboundSms]: ...


@runtime_checkable
class ReceivesWebhooks(Protocol):
    """Receives by webhook; raises ``WebhookRejected`` for anything unauthenticated or malformed."""

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvents: ...

    def webhook_docs(self) -> Sequence[WebhookDoc]:
        """What it serves under /webhooks/sms/<name>, for GET /openapi.json."""
        ...


@runtime_checkable
class AnswersWebhooks(Protocol):
    """A gateway that expects a particular body back (Twilio: TwiML) on every accepted webhook."""

    webhook_answer: WebhookAnswer


@runtime_checkable
class FetchesMedia(Protocol):
    """Hands out inbound media by URL (``Attachment.url``) that only its credentials can read."""

    async def fetch_media(self, url: str) -> tuple[bytes, str]:
        """The content and its content type; ``DeliveryError`` subclasses on failure."""
        ...


@runtime_checkable
class SendsMedia(Protocol):
    """Sends files with an SMS (MMS): ``OutboundSms.media``, each fetched by the gateway from
    its URL. The core checks these limits before anything is queued."""

    max_media_bytes: int  # all files of one message together
    max_media_files: int
    media_types: frozenset[str]  # content types it accepts, lower case without parameters


@runtime_checkable
class PollsStatus(Protocol):
    """Can be asked for the status of SMS it accepted.

    ``awaits`` are the statuses that may still change (a gateway without handset receipts
    never moves past "sent", so asking about sent SMS would only cost calls).
    """

    awaits: tuple[Status, ...]

    async def poll_status(self, sent: Sequence[Outbox]) -> list[DeliveryUpdate]:
        """Updates for SMS it accepted (each has a ``provider_id``; ``to`` says where it went)."""
        ...


@runtime_checkable
class Reconciles(Protocol):
    """Can tell whether an SMS whose send was interrupted actually went out (no idempotency key)."""

    async def find_sent(
        self, sms: OutboundSms, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        """The provider id of ``sms`` if it went out since ``since``.

        Ids in ``exclude`` are already recorded for other SMS (the same text sent twice) and
        must never match.
        """
        ...


@runtime_checkable
class HasHistory(Protocol):
    """Keeps conversations and can return one for backfill."""

    async def history(self, number: str, limit: int) -> list[HistoryItem]: ...


@runtime_checkable
class RegistersWebhooks(Protocol):
    """Tells the gateway where to push (SMSGate): one instance of a deployment does it, as a
    duty, so several never register over each other."""

    async def register_webhooks(self) -> None:
        """Register now, or keep trying in the background while the gateway is unreachable;
        raises ``DeliveryError`` when refused for good."""
        ...

    async def stop_registering(self) -> None: ...


@runtime_checkable
class ReportsDevices(Protocol):
    """Can say whether its phones (or its account) are up: online, battery, last seen.

    One call per watchdog check (``watch_interval``); ``DeliveryError`` subclasses when the
    vendor cannot be asked, which the watchdog counts towards ``api_down``.
    """

    async def device_status(self) -> list[DeviceStatus]: ...


OnChatMessage = Callable[[ChatMessage], Awaitable[None]]


class CallKind(enum.Enum):
    """What a paced chat call is, for ``ChatPlatform.limits``."""

    MESSAGE = "message"  # a post, or what shows as one (a new, renamed or closed thread)
    STATUS = "status"  # ``ShowsStatus.show_status``: however many calls the platform makes
    LIGHT = "light"  # anything else: a private notice, reopening a thread to post in it


class ChatPlatform(Protocol):
    """A chat the bridge mirrors into: what every chat does. The rest are capabilities.

    A chat without threads (``ManagesThreads``) gets a header per post and is answered by
    reply. Errors are ``DeliveryError`` or ``ThreadError`` subclasses.
    """

    name: str
    max_text: int
    hold_key: str  # the pacing key a ``RateLimited`` from this chat holds

    async def start(self, on_message: OnChatMessage) -> None: ...

    async def stop(self) -> None: ...

    async def post(self, thread_id: str | None, text: str, reply_to: str | None = None) -> str: ...

    def limits(self, call: CallKind) -> Sequence[tuple[str, Rate]]:
        """Pacing windows one such call falls under; a window listed n times takes n slots
        (a call the platform makes as several requests)."""
        ...

    def allows(self, user: ChatUser) -> bool:
        """May this person send SMS from this chat?"""
        ...

    def health(self) -> dict[str, object]: ...


@runtime_checkable
class ManagesThreads(Protocol):
    """Gives each number a thread of its own (a forum topic, a Slack thread).

    ``threaded`` says whether it does now: a Telegram private chat has topics only when the
    bot has them on, which is known once it has started.
    """

    @property
    def threaded(self) -> bool: ...

    async def open_thread(self, title: str) -> str: ...

    async def rename_thread(self, thread_id: str, title: str) -> None: ...


_MANAGES_THREADS: dict[type, bool] = {}


def threaded(platform: ChatPlatform) -> bool:
    """Whether ``platform`` gives each number its own thread (now)."""
    # Asked for every SMS taken in: an isinstance() against a runtime-checkable Protocol
    # inspects every member each time, so it is asked once per class.
    kind = type(platform)
    manages = _MANAGES_THREADS.get(kind)
    if manages is None:
        manages = _MANAGES_THREADS[kind] = isinstance(platform, ManagesThreads)
    return manages and cast(ManagesThreads, platform).threaded


@runtime_checkable
class ClosesThreads(Protocol):
    """Can close a thread and open it again (Telegram forum topics); closing or reopening one
    already so is no error."""

    async def close_thread(self, thread_id: str) -> None: ...

    async def reopen_thread(self, thread_id: str) -> None: ...


@runtime_checkable
class ShowsStatus(Protocol):
    """Can show an outbound SMS's status on a chat message (a reaction)."""

    async def show_status(self, message_id: str, status: Status) -> None: ...


@runtime_checkable
class PostsFiles(Protocol):
    """Can upload a file into a thread."""

    async def post_file(
        self,
        thread_id: str | None,
        name: str,
        content_type: str,
        data: bytes,
        reply_to: str | None = None,
    ) -> str:
        """Upload a file into the thread; the id of the message that shows it."""
        ...


@runtime_checkable
class EditsMessages(Protocol):
    """Can change the text of a message it posted (a collapsed repeat shows its count)."""

    async def edit_text(self, message_id: str, text: str) -> None: ...


@runtime_checkable
class PostsPrivately(Protocol):
    """Can show a notice to one person only (Slack's ephemeral messages): the answer to what
    only its author saw (``ChatMessage.private``), and refusals."""

    async def post_private(self, thread_id: str | None, user_id: str, text: str) -> None: ...


@runtime_checkable
class ReceivesChatWebhooks(Protocol):
    """A chat platform that can be fed updates by our web server at /webhooks/<type>/<chat>.

    It answers once the update is safe (handled or stored); ``None`` means a plain 200.
    """

    async def accept_webhook(
        self, headers: dict[str, str], body: bytes
    ) -> WebhookAnswer | None: ...

    def webhook_doc(self) -> WebhookDoc | None:
        """The webhook for GET /openapi.json; None when updates come another way (polling)."""
        ...


@runtime_checkable
class ConsumesUpdates(Protocol):
    """A chat whose updates one consumer per account must fetch (Telegram's getUpdates: a
    second consumer gets 409 Conflict). Only the instance owning the chat's duty consumes;
    ``start`` readies the client everywhere, so any instance can post and take webhooks."""

    async def start_consuming(self) -> None: ...

    async def stop_consuming(self) -> None:
        """Stop fetching; returns once no fetch is open (the next owner's would conflict)."""
        ...


@runtime_checkable
class FetchesFiles(Protocol):
    """Can download a file a person posted (``ChatMessage.files``), so it can leave as MMS."""

    async def fetch_file(self, file: ChatFile, limit: int) -> bytes:
        """The content; ``DeliveryError`` subclasses on failure, ``TooLarge`` past ``limit``
        bytes (read no further)."""
        ...
