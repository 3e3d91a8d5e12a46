"""What people write in chats: who may send, which number a message answers, the commands.

Where an answer goes (gateway, mirrors) is the router's to decide."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from bridge.errors import DeliveryError
from bridge.lifecycle import STOP_GRACE, settle
from bridge.models import ChatMessage, Conversation
from bridge.outgoing_media import OutgoingMedia
from bridge.phone import InvalidNumber, is_dialable, parse_dialable, pretty
from bridge.ports import ChatPlatform, HasHistory, SmsGateway
from bridge.render import history_text, split_text
from bridge.router import Router
from bridge.store.records import Notice
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"^/([A-Za-z_]+)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
_NUMBER_TOKEN = re.compile(r"^[+()\d][\d\-().]*$")

REFUSED = "⛔ You are not allowed to send SMS from this chat. Nothing was sent."
NOT_TEXT = "Only text can be sent as SMS; this message was not sent."
EDITED = "✏️ Edits are not sent: an SMS cannot be changed once it has gone. Send a new message."
DELETED = "🗑 Deleting here does not unsend: the SMS to {number} had already gone to the gateway."
ALERTS_ONLY = (
    "🔕 This came through an alerts-only route: replies are not sent as SMS. Nothing was sent."
)
GATHERING = (
    "This thread gathers SMS from several numbers, so a message here goes to nobody. To answer "
    "one, reply to it, or send /sms <number> <text>. Nothing was sent."
)
NOTE_PREFIX = "note:"  # an internal note in a number's thread: never sent
HELP_THREADED = (
    "Each phone number has its own topic; what you write there is sent to it by SMS.\n"
    "/sms <number> <text> — text a number (starts its topic)\n"
    "/history — the number's earlier messages at the gateway (inside its topic)"
)
HELP_PLAIN = (
    "Reply to a bridged message to answer that number by SMS.\n"
    "/sms <number> <text> — text a number\n"
    "/history — reply with it to a bridged message to see earlier messages"
)


def split_number(args: str) -> tuple[str, str]:
    """``"+1 555 123 4567 hello"`` -> (``"+1 555 123 4567"``, ``"hello"``)."""
    tokens = args.split(" ")
    taken = 0
    while taken < len(tokens) and _NUMBER_TOKEN.match(tokens[taken]):
        taken += 1
    if taken == 0 and tokens:
        taken = 1  # not number-like: let the parser say why
    return " ".join(tokens[:taken]), " ".join(tokens[taken:]).strip()


class ChatHandler:
    """Turns what people write in chats into SMS (or into a clear reason why not)."""

    def __init__(
        self,
        router: Router,
        store: SqlStore,
        gateways: dict[str, SmsGateway],
        chats: dict[str, ChatPlatform],
        *,
        region: str | None = None,
        history_limit: int = 50,
        forget_thread: Callable[[str, int], None] = lambda _chat, _conversation: None,
        public_url: str | None = None,
    ) -> None:
        self.router = router
        self.region = region  # how numbers without a country code are read
        self.history_limit = history_limit
        self.store = store
        self.gateways = gateways
        self.chats = chats
        self.forget_thread = forget_thread  # tells the chat's worker a thread was deleted
        self._tasks: set[asyncio.Task[None]] = set()
        self.media = OutgoingMedia(router, store, gateways, chats, public_url)

    async def __call__(self, msg: ChatMessage) -> None:
        if msg.user.is_bot:
            return  # our own posts and other bots' never become SMS
        platform = self.chats[msg.chat]
        if msg.deleted:
            await self._deleted(msg)
            return
        conversation = await self.router.conversation_of(msg)
        if msg.edited:
            if conversation is not None:
                digest = hashlib.sha256((msg.text or "").encode()).hexdigest()[:16]
                await self._reply(msg, EDITED, key=f"edit:{msg.message_id}:{digest}")
            return
        text = (msg.text or "").strip()
        command = _COMMAND.match(text) if text.startswith("/") else None
        if command is not None:
            await self._command(
                msg, platform, conversation, command.group(1).lower(), command.group(2) or ""
            )
            return
        if text[: len(NOTE_PREFIX)].lower() == NOTE_PREFIX:
            return  # the team talking among themselves
        if conversation is None:
            if msg.thread_id is not None and await self.store.threads.is_named(
                msg.chat, msg.thread_id
            ):
                await self._reply(msg, GATHERING)
            return  # otherwise chatter outside any number's thread
        if not platform.allows(msg.user):
            await self._reply(msg, REFUSED, private=True)
            return
        if not await self.router.may_answer(msg, conversation):
            await self._reply(msg, ALERTS_ONLY)
            return
        if msg.has_media or not text:
            refusal = await self.media.send(msg, conversation, text) if msg.files else NOT_TEXT
            if refusal is not None:
                await self._reply(msg, refusal)
            return
        await self._send(msg, conversation.gateway, conversation.number, text, echo=False)

    async def _deleted(self, msg: ChatMessage) -> None:
        """A thread's first message deleted retires the thread; a sent reply cannot be undone."""
        conversation_id = await self.store.threads.forget(msg.chat, msg.message_id)
        if conversation_id is not None:
            self.forget_thread(msg.chat, conversation_id)
            log.info(
                "chat %s: thread %s deleted; the next SMS opens a new one",
                msg.chat,
                msg.message_id,
                extra={"chat": msg.chat},
            )
            return
        sms = await self.store.outbound.by_origin(msg.chat, msg.message_id)
        if sms is not None:
            notice = Notice(
                msg.chat, DELETED.format(number=pretty(sms.to)), thread_id=msg.thread_id
            )
            await self.store.jobs.add_notices(
                [notice], dedupe=(f"notice:{msg.chat}", f"delete:{msg.message_id}")
            )

    async def _command(
        self,
        msg: ChatMessage,
        platform: ChatPlatform,
        conversation: Conversation | None,
        name: str,
        args: str,
    ) -> None:
        if name in ("help", "start"):
            await self._reply(msg, HELP_THREADED if platform.threaded else HELP_PLAIN)
            return
        if name not in ("sms", "history"):
            return  # other bots' commands are none of our business
        if not platform.allows(msg.user):
            await self._reply(msg, REFUSED, private=True)
            return
        if name == "history":
            if conversation is None:
                where = "inside a number's topic" if platform.threaded else "as a reply to an SMS"
                await self._reply(msg, f"Use /history {where}.")
                return
            self._spawn(self._history(msg, conversation))
            return
        raw_number, body = split_number(args.strip())
        if not raw_number or not body:
            await self._reply(msg, "Usage: /sms <number> <text>")
            return
        try:
            number = parse_dialable(raw_number, self.region)
        except InvalidNumber as exc:
            await self._reply(msg, f"Cannot send: {exc}.")
            return
        gateway = self.router.default_gateway(msg.chat)
        if gateway is None:
            await self._reply(msg, "No gateway is routed to this chat; nothing was sent.")
            return
        await self._send(msg, gateway, number, body, echo=True)

    async def _send(
        self, msg: ChatMessage, gateway: str, number: str, text: str, *, echo: bool
    ) -> None:
        if not is_dialable(number):
            await self._reply(msg, f"Cannot answer {number}: it is not a phone number.")
            return
        if await self.router.send(msg, gateway, number, text, echo=echo) is None:
            log.debug(
                "chat message %s:%s was already queued",
                msg.chat,
                msg.message_id,
                extra={"gateway": gateway, "chat": msg.chat, "number": number},
            )

    async def _history(self, msg: ChatMessage, conversation: Conversation) -> None:
        gateway = self.gateways.get(conversation.gateway)
        if not isinstance(gateway, HasHistory):
            await self._reply(msg, f"The gateway {conversation.gateway!r} keeps no history.")
            return
        try:
            items = await gateway.history(conversation.number, self.history_limit)
        except DeliveryError as exc:
            await self._reply(msg, f"History unavailable: {exc.reason}")
            return
        platform = self.chats[msg.chat]
        parts = split_text(history_text(conversation.number, items), platform.max_text)
        notices = [
            Notice(msg.chat, part, conversation_id=conversation.id, reply_to=None) for part in parts
        ]
        await self.store.jobs.add_notices(notices, dedupe=(f"cmd:{msg.chat}", msg.message_id))
        log.info(
            "history of %s: %d messages",
            pretty(conversation.number),
            len(items),
            extra={
                "gateway": conversation.gateway,
                "chat": msg.chat,
                "number": conversation.number,
            },
        )

    async def _reply(
        self, msg: ChatMessage, text: str, key: str | None = None, *, private: bool = False
    ) -> None:
        notice = Notice(
            msg.chat,
            text,
            thread_id=msg.thread_id,
            reply_to=msg.message_id,
            private_to=msg.user.id if private else None,
        )
        await self.store.jobs.add_notices(
            [notice], dedupe=(f"notice:{msg.chat}", key or msg.message_id)
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # A gateway call must not hold up the chat's update loop; the task is kept so that
        # shutdown can wait for it and errors reach the log.
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background chat task failed", exc_info=task.exception())

    async def drain(self, grace: float = STOP_GRACE) -> None:
        """Wait for background work (history fetches) before shutting down."""
        await settle(list(self._tasks), grace, "chat handler")
