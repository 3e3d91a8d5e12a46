"""Telegram via python-telegram-bot: one chat, posted to in topics or as replies.

The first PTB import of the process: the calls (``calls``) and the receiving of updates
(``receiver``, by polling or webhook) are reached through this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

# PTB 22 reads RetryAfter.retry_after while building the exception and warns that it will become
# a timedelta; opting in now makes 429s plain exceptions (and silent) in this process.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Bot, InputFile, ReactionTypeEmoji, ReplyParameters
from telegram.request import HTTPXRequest

from bridge.errors import DeliveryError, Terminal, ThreadsOff
from bridge.models import ChatFile, ChatUser, Status, WebhookAnswer, WebhookDoc
from bridge.pacing import Rate
from bridge.ports import CallKind, ChatPlatform, OnChatMessage
from bridge.tls import tls_context
from connectors.chat.telegram.calls import call
from connectors.chat.telegram.config import TelegramConfig
from connectors.chat.telegram.files import download
from connectors.chat.telegram.receiver import UpdateReceiver

log = logging.getLogger(__name__)

# Reactions must come from Telegram's fixed list (no ✅ or ⏳ there); "✍" is U+270D alone.
STATUS_EMOJI = {
    Status.PENDING: "✍",
    Status.QUEUED: "✍",
    Status.SENT: "👌",
    Status.DELIVERED: "👍",
    Status.FAILED: "💔",
}
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
PHOTO_MAX_BYTES = 10 * 1024 * 1024
# A private chat refusing a topic: Threaded Mode turned off in @BotFather ("not a forum"), or
# Telegram's own regression after Bot API 10.0 (tdlib/telegram-bot-api#847).
_NO_PRIVATE_TOPICS = ("bot_forum_create_forbidden", "the chat is not a forum")


def create(config: TelegramConfig, webhook_url: str | None) -> ChatPlatform:
    """The chat for ``config``: only a group's topics can be closed (``TelegramForum``)."""
    if config.chat_id < 0:
        return TelegramForum(config, webhook_url)
    return TelegramChat(config, webhook_url)


class TelegramChat:
    """One Telegram chat: a private chat (a header per SMS, or a topic per number when the
    bot has Threaded Mode on), or a group (see ``TelegramForum``)."""

    max_text = 4096

    def __init__(self, config: TelegramConfig, webhook_url: str | None) -> None:
        self.config = config
        self.name = config.name
        token = config.bot_token.get_secret_value()
        self._bot_id = token.partition(":")[0]
        self.hold_key = f"telegram:{self._bot_id}:{config.chat_id}"
        self._group = config.chat_id < 0
        hook_url = webhook_url if config.transport != "polling" else None
        if config.transport == "webhook" and webhook_url is None:
            raise ValueError(f"chat {config.name!r}: transport: webhook needs server.public_url")
        secret = (
            config.webhook_secret.get_secret_value()
            if config.webhook_secret
            else hashlib.sha256(b"smsbridge-telegram-webhook:" + token.encode()).hexdigest()
        )
        base = str(config.base_url).rstrip("/")
        timeout = config.timeout
        self.bot = Bot(
            token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(
                connection_pool_size=8,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=timeout,
                pool_timeout=timeout,
                httpx_kwargs={"verify": tls_context()},
            ),
            get_updates_request=HTTPXRequest(
                connection_pool_size=1,
                read_timeout=10.0,
                connect_timeout=timeout,
                httpx_kwargs={"verify": tls_context()},
            ),
        )
        self._receiver = UpdateReceiver(self.bot, config, hook_url, secret)

    @property
    def transport(self) -> str:
        return self._receiver.transport

    @property
    def threaded(self) -> bool:
        return self._receiver.threaded

    async def start(self, on_message: OnChatMessage) -> None:
        await self._receiver.start(on_message)

    async def start_consuming(self) -> None:
        await self._receiver.start_consuming()

    async def stop_consuming(self) -> None:
        await self._receiver.stop_consuming()

    async def stop(self) -> None:
        await self._receiver.stop()
        try:
            await self.bot.shutdown()
        except Exception:
            log.debug("telegram %s: shutdown error ignored", self.name)

    def health(self) -> dict[str, object]:
        return {**self._receiver.health(), "threads": self.threaded}

    def webhook_doc(self) -> WebhookDoc | None:
        return self._receiver.webhook_doc()

    async def accept_webhook(self, headers: dict[str, str], body: bytes) -> WebhookAnswer | None:
        return await self._receiver.accept_webhook(headers, body)

    def allows(self, user: ChatUser) -> bool:
        return user.id.isdigit() and int(user.id) in self.config.allowed_user_ids

    def limits(self, call: CallKind) -> Sequence[tuple[str, Rate]]:
        pacing = self.config.pacing
        overall = (f"telegram:{self._bot_id}", pacing.overall.rate())
        if call is not CallKind.MESSAGE:
            return (overall,)
        chat = (self.hold_key, pacing.chat.rate())
        if self._group:
            return (chat, (self.hold_key, pacing.group.rate()), overall)
        return (chat, overall)

    async def open_thread(self, title: str) -> str:
        try:
            topic = await call(
                "createForumTopic",
                lambda: self.bot.create_forum_topic(self.config.chat_id, name=title),
            )
        except DeliveryError as exc:
            # A group without topics is misconfigured (the chat is down until fixed); a
            # private chat's topics are optional: without them every post has its header.
            if self._group or not any(m in exc.reason.lower() for m in _NO_PRIVATE_TOPICS):
                raise
            self._receiver.topics_refused(exc.reason)
            raise ThreadsOff(exc.reason) from None
        return str(topic.message_thread_id)

    async def rename_thread(self, thread_id: str, title: str) -> None:
        try:
            await call(
                "editForumTopic",
                lambda: self.bot.edit_forum_topic(self.config.chat_id, int(thread_id), name=title),
            )
        except Terminal as exc:
            if "topic_not_modified" not in exc.reason.lower():
                raise  # already so named is fine: a retry after a lost answer

    async def post(self, thread_id: str | None, text: str, reply_to: str | None = None) -> str:
        reply = (
            ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to else None
        )
        sent = await call(
            "sendMessage",
            lambda: self.bot.send_message(
                self.config.chat_id,
                text,
                message_thread_id=int(thread_id) if thread_id else None,
                reply_parameters=reply,
            ),
        )
        return str(sent.message_id)

    async def edit_text(self, message_id: str, text: str) -> None:
        try:
            await call(
                "editMessageText",
                lambda: self.bot.edit_message_text(
                    text, chat_id=self.config.chat_id, message_id=int(message_id)
                ),
            )
        except Terminal as exc:
            # Shows the text already: an edit done again (it landed, then we crashed or lost
            # the chat before recording it). Refused, it would be posted anew, twice.
            if "message is not modified" not in exc.reason.lower():
                raise

    async def post_file(
        self,
        thread_id: str | None,
        name: str,
        content_type: str,
        data: bytes,
        reply_to: str | None = None,
    ) -> str:
        reply = (
            ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to else None
        )
        thread = int(thread_id) if thread_id else None
        upload = InputFile(data, filename=name)
        # Photos are shown inline (and recompressed); anything else, or a photo Telegram refuses
        # as one (over 10 MB, odd dimensions), goes as a document, byte for byte.
        if content_type in PHOTO_TYPES and len(data) <= PHOTO_MAX_BYTES:
            sent = await call(
                "sendPhoto",
                lambda: self.bot.send_photo(
                    self.config.chat_id, upload, message_thread_id=thread, reply_parameters=reply
                ),
            )
        else:
            sent = await call(
                "sendDocument",
                lambda: self.bot.send_document(
                    self.config.chat_id, upload, message_thread_id=thread, reply_parameters=reply
                ),
            )
        return str(sent.message_id)

    async def show_status(self, message_id: str, status: Status) -> None:
        await call(
            "setMessageReaction",
            lambda: self.bot.set_message_reaction(
                self.config.chat_id, int(message_id), ReactionTypeEmoji(STATUS_EMOJI[status])
            ),
        )

    async def fetch_file(self, file: ChatFile, limit: int) -> bytes:
        return await download(self.bot, file, limit)


class TelegramForum(TelegramChat):
    """A group: a forum's topics, unlike a private chat's, can be closed and reopened."""

    async def close_thread(self, thread_id: str) -> None:
        await self._topic_state(
            "closeForumTopic",
            lambda: self.bot.close_forum_topic(self.config.chat_id, int(thread_id)),
        )

    async def reopen_thread(self, thread_id: str) -> None:
        await self._topic_state(
            "reopenForumTopic",
            lambda: self.bot.reopen_forum_topic(self.config.chat_id, int(thread_id)),
        )

    @staticmethod
    async def _topic_state(label: str, make: Callable[[], Awaitable[bool]]) -> None:
        try:
            await call(label, make)
        except Terminal as exc:
            if "topic_not_modified" not in exc.reason.lower():
                raise  # already so is fine: a person did it first, or a retry after a lost answer
