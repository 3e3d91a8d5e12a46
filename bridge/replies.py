"""What people write in chats: who may send, which number a message answers, what is refused.

The commands are bridge/desk.py's; where an answer goes (gateway, mirrors) is the router's."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from bridge import desk, segments
from bridge.errors import DeliveryError
from bridge.lifecycle import STOP_GRACE, settle
from bridge.models import ChatMessage, Conversation
from bridge.outgoing_media import OutgoingMedia
from bridge.phone import is_dialable, pretty
from bridge.ports import ChatPlatform, HasHistory, PostsPrivately, SmsGateway, threaded
from bridge.render import history_text, split_text
from bridge.router import Router
from bridge.store.records import Notice
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

# /word[@bot] [args]: the connector strips our own @name, so an @bot left names another bot.
_COMMAND = re.compile(r"^/([A-Za-z_]+)(@\S+)?(?:\s+(.*))?$", re.DOTALL)

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
UNANCHORED = (
    "💬 Nothing was sent: to answer by SMS, reply to the SMS, or send /sms <number> <text>."
)
NOTE_PREFIX = "note:"  # an internal note in a number's thread: never sent
DONE = "✔ Done."  # the private answer to a command that the thread is told of


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
        max_segments: int = 6,
        forget_thread: Callable[[str, int], None] = lambda _chat, _conversation: None,
        personal: frozenset[str] = frozenset(),
        public_url: str | None = None,
    ) -> None:
        self.router = router
        self.region = region  # how numbers without a country code are read
        self.history_limit = history_limit
        self.max_segments = max_segments  # longer replies wait for a "!" to confirm them
        self.store = store
        self.gateways = gateways
        self.chats = chats
        self.forget_thread = forget_thread  # tells the chat's worker a thread was deleted
        self.personal = personal  # chats with one person and no threads (a private chat)
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
            if command.group(2):
                return  # another bot's command: neither ours nor an SMS
            call = desk.Call(msg, platform, conversation, command.group(3) or "")
            await desk.dispatch(self, call, command.group(1).lower())
            return
        if text[: len(NOTE_PREFIX)].lower() == NOTE_PREFIX:
            return  # the team talking among themselves
        if conversation is None:
            if msg.thread_id is not None and await self.store.threads.is_named(
                msg.chat, msg.thread_id
            ):
                await self._reply(msg, GATHERING)
            elif msg.chat in self.personal and not threaded(platform):
                await self._reply(msg, UNANCHORED)  # only one person writes here: say how
            return  # otherwise chatter outside any number's thread
        if not platform.allows(msg.user):
            await self.refuse(msg)
            return
        if not await self.router.may_answer(msg, conversation):
            await self._reply(msg, ALERTS_ONLY)
            return
        if msg.has_media or not text:
            await self._media(msg, conversation, text)
            return
        await self._send(msg, conversation.gateway, conversation.number, text, echo=False)

    async def _media(self, msg: ChatMessage, conversation: Conversation, text: str) -> None:
        """Files go out as MMS where the gateway can; anything else that is not text cannot."""
        refusal = await self.media.send(msg, conversation, text) if msg.files else NOT_TEXT
        if refusal is not None:
            await self._reply(msg, refusal)

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

    async def _send(
        self, msg: ChatMessage, gateway: str, number: str, text: str, *, echo: bool
    ) -> None:
        if not is_dialable(number):
            await self._reply(msg, f"Cannot answer {number}: it is not a phone number.")
            return
        text, too_long = segments.gate(text, self.max_segments)
        if too_long is not None:
            await self._reply(msg, too_long)
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
        notice = self._notice(msg, text, private=private)
        dedupe = (f"notice:{msg.chat}", key) if key else self.key(msg)
        await self.store.jobs.add_notices([notice], dedupe=dedupe)

    def _notice(self, msg: ChatMessage, text: str, *, private: bool) -> Notice:
        return Notice(
            msg.chat,
            text,
            thread_id=msg.thread_id,
            reply_to=msg.message_id,
            private_to=msg.user.id if private or msg.private else None,
        )

    async def answer(self, msg: ChatMessage, text: str) -> None:
        """A command's answer: to its author alone where the platform can."""
        await self._reply(msg, text, private=True)

    async def refuse(self, msg: ChatMessage) -> None:
        await self._reply(msg, REFUSED, private=True)

    async def announce(self, call: desk.Call, text: str) -> None:
        """A command changed what the whole team sees: the thread is told."""
        await self.store.jobs.add_notices(self.announcement(call, text), dedupe=self.key(call.msg))

    def announcement(self, call: desk.Call, text: str) -> list[Notice]:
        """``text`` for the thread; where answers are private, its author also gets one."""
        notices = [self._notice(call.msg, text, private=False)]
        if isinstance(call.platform, PostsPrivately):
            notices.insert(0, self._notice(call.msg, DONE, private=True))
        return notices

    @staticmethod
    def key(msg: ChatMessage) -> tuple[str, str]:
        """What makes a message's answer one: a redelivered message gets none again."""
        return (f"notice:{msg.chat}", msg.message_id)

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
