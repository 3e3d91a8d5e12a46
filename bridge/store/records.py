"""Records the store takes and returns besides the neutral models."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bridge.models import InboundSms, Outbox
from bridge.store.media import MediaFile


class JobKind(enum.StrEnum):
    SMS = "sms"  # an inbound SMS part into the number's thread
    FILE = "file"  # an inbound SMS's attachment, uploaded into the number's thread
    ECHO = "echo"  # an SMS sent from elsewhere, shown in the number's thread
    NOTICE = "notice"  # a short bridge message (refusal, failure reason, history)
    STATUS = "status"  # show an outbound SMS's status on one of its chat messages
    RENAME = "rename"  # retitle the number's thread: a new name (/name) or gateway alias
    EDIT = "edit"  # show on an earlier post that the same SMS came again (a route's collapse)
    CLOSE = "close"  # /close: close the number's thread where the platform can
    REOPEN = "reopen"  # /reopen, or an SMS into a closed thread


@dataclass(frozen=True, slots=True)
class Delivery:
    """One chat's share of an inbound SMS, as its route placed it."""

    chat: str
    parts: tuple[str, ...]  # the text, rendered and split for the chat
    thread: str | None = None  # a route's fixed thread, by title; None: the number's own
    replies: bool = True  # False: alerts only, a reply is refused
    collapse: float | None = None  # seconds: the same text from the same sender is one post
    route: str = ""  # the route's label, for logs


@dataclass(frozen=True, slots=True)
class OptChange:
    """An inbound SMS that is a stop or start keyword: what it changes and shows."""

    opted_out: bool  # True: a stop; False: a start
    notice: str  # shown after the SMS in each thread it is posted in
    confirmation: str | None = None  # sent back once (a stop, with opt_out.confirmation set)


@dataclass(frozen=True, slots=True)
class IngestItem:
    """An inbound SMS and the chat posts it becomes, stored together or not at all."""

    sms: InboundSms
    posts: tuple[Delivery, ...]
    event: tuple[str, str] | None = None  # (source, key) of the delivering envelope
    opt: OptChange | None = None  # a stop or start keyword: applied once, with the SMS


@dataclass(frozen=True, slots=True)
class Stored:
    """A new inbound SMS as stored: its id, whether its sender is blocked (not posted), and
    whether it changed its number's opt-out."""

    id: int
    blocked: bool = False
    opted: bool = False  # a stop or start keyword that changed the number's opt-out


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """A chat message that should leave as SMS."""

    gateway: str
    number: str
    text: str
    origin_chat: str
    origin_message_id: str
    author: str
    origin_thread_id: str | None = None
    # The origin is a chat message that shows the SMS's status; False for SMS from no chat
    # (`smsbridge send`), whose origin_chat names no chat a worker posts in.
    mirrored: bool = True
    purpose: str = "reply"  # 'retry': /retry resending a failed SMS
    media: tuple[MediaFile, ...] = ()  # files that go with it (MMS), stored in its transaction


@dataclass(frozen=True, slots=True)
class ChatJob:
    id: int
    chat: str
    kind: JobKind
    conversation_id: int | None
    inbound_id: int | None
    outbox_id: int | None
    text: str | None
    thread_id: str | None
    message_id: str | None
    attempts: int
    next_attempt_at: float
    # Fetched with the job, so posting needs no further reads:
    number: str | None = None
    alias: str | None = None  # the name shown: a person's (contacts), else the gateway's
    known_thread: str | None = None  # the conversation's thread in this chat, if it has one
    attachment_id: int | None = None
    private_to: str | None = None
    fixed_thread: str | None = None  # a route's thread for all its SMS, by title
    replies: bool = True


@dataclass(frozen=True, slots=True)
class Notice:
    """A bridge message to post: in a conversation's thread, or beside a chat message."""

    chat: str
    text: str
    conversation_id: int | None = None
    thread_id: str | None = None
    reply_to: str | None = None
    private_to: str | None = None  # a chat user id: only they see it, where the platform can
    fixed_thread: str | None = None  # a thread of the chat by title, opened on first use (ops)


@dataclass(frozen=True, slots=True)
class PostDone:
    """A chat job whose post went through, and what it became."""

    job: ChatJob
    message_ids: tuple[str, ...]
    thread_id: str | None
    new_thread: bool = False  # the thread was opened for this post: record it too


@dataclass(frozen=True, slots=True)
class PendingSms:
    """The next SMS a gateway worker should send."""

    sms: Outbox
    next_attempt_at: float
    maybe_sent: bool  # an earlier attempt may have reached the gateway: reconcile first
    created_at: float
    purpose: str = "reply"  # reply | retry | confirmation (alone allowed to an opted-out number)
    opted_out: bool = False  # the number's state when read: such SMS are failed unsent
    blocked: bool = False
