"""Telegram via python-telegram-bot (the one PTB import): topics or replies, polling or webhook."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TypeVar

# PTB 22 reads RetryAfter.retry_after while building the exception and warns that it will become
# a timedelta; opting in now makes 429s plain exceptions (and silent) in this process.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Bot, InputFile, Message, ReactionTypeEmoji, ReplyParameters, Update
from telegram import error as tg
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from bridge.errors import (
    BadRequest,
    Forbidden,
    RateLimited,
    Retryable,
    Terminal,
    ThreadClosed,
    ThreadGone,
    Unavailable,
)
from bridge.models import ChatMessage, ChatUser, Status, WebhookAnswer, WebhookDoc
from bridge.openapi import NUMBER, header_scheme, obj
from bridge.pacing import Rate
from bridge.ports import OnChatMessage
from bridge.tls import tls_context
from connectors.chat.telegram import update as telegram_update
from connectors.chat.telegram.config import TelegramConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# Reactions must come from Telegram's fixed list (no ✅ or ⏳ there); "✍" is U+270D alone.
STATUS_EMOJI = {
    Status.PENDING: "✍",
    Status.QUEUED: "✍",
    Status.SENT: "👌",
    Status.DELIVERED: "👍",
    Status.FAILED: "💔",
}
UPDATES = ["message", "edited_message"]
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
PHOTO_MAX_BYTES = 10 * 1024 * 1024
CHAT_DOWN_RETRY = 60.0  # bot removed, chat gone, token revoked: check back slowly, keep the queue
_THREAD_GONE = ("message thread not found", "topic_deleted", "topic_id_invalid")
_CHAT_DOWN = (
    "chat not found",
    "not enough rights",
    "the chat is not a forum",
    "chat_write_forbidden",
    "have no rights",
    "need administrator rights",
)


# What Telegram pushes in webhook mode, for GET /openapi.json (core.telegram.org/bots/api#update).
WEBHOOK_DOC = WebhookDoc(
    "Telegram updates (webhook mode)",
    security={
        "telegramSecret": header_scheme(
            "X-Telegram-Bot-Api-Secret-Token", "the secret_token given to setWebhook"
        )
    },
    bodies={
        "application/json": obj(
            {"update_id": NUMBER},
            {kind: obj({"message_id": NUMBER, "date": NUMBER, "chat": obj({"id": NUMBER})})
             for kind in UPDATES},
        )
    },
    answer={"application/json": obj({"ok": {"const": True}})},
)  # fmt: skip


def _retry_after(exc: tg.RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)  # if PTB_TIMEDELTA was set off
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def call(label: str, make: Callable[[], Awaitable[T]]) -> T:
    """Run one Bot API call, translating PTB's errors into the bridge's."""
    try:
        return await make()
    except tg.RetryAfter as exc:
        raise RateLimited(f"Telegram flood control on {label}", _retry_after(exc)) from None
    except tg.BadRequest as exc:
        text = exc.message.lower()
        if any(marker in text for marker in _THREAD_GONE):
            raise ThreadGone(exc.message) from None
        if "topic_closed" in text:
            raise ThreadClosed(exc.message) from None
        if any(marker in text for marker in _CHAT_DOWN):
            raise Unavailable(f"Telegram refused {label}: {exc.message}", CHAT_DOWN_RETRY) from None
        raise Terminal(f"Telegram refused {label}: {exc.message}") from None
    except tg.InvalidToken:
        # PTB's message quotes the token itself ("The token `123:ABC` was rejected…").
        raise Unavailable(
            f"Telegram refused {label}: the bot token was rejected", CHAT_DOWN_RETRY
        ) from None
    except (tg.Forbidden, tg.ChatMigrated, tg.Conflict) as exc:
        raise Unavailable(f"Telegram refused {label}: {exc.message}", CHAT_DOWN_RETRY) from None
    except tg.TimedOut:
        raise Retryable(f"Telegram timed out on {label}") from None
    except tg.NetworkError as exc:
        raise Retryable(f"Telegram unreachable on {label}: {exc.message}") from None


class TelegramChat:
    """One Telegram chat: a forum supergroup (a topic per number) or a private chat."""

    max_text = 4096

    def __init__(self, config: TelegramConfig, webhook_url: str | None) -> None:
        self.config = config
        self.name = config.name
        self.threaded = config.threaded
        token = config.bot_token.get_secret_value()
        self._bot_id = token.partition(":")[0]
        self.hold_key = f"telegram:{self._bot_id}:{config.chat_id}"
        self._group = config.chat_id < 0
        self._webhook_url = webhook_url if config.transport != "polling" else None
        if config.transport == "webhook" and webhook_url is None:
            raise ValueError(f"chat {config.name!r}: transport: webhook needs server.public_url")
        self._secret = (
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
        self._on_message: OnChatMessage | None = None
        self._poller: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._state: dict[str, object] = {"state": "starting", "last_error": None}

    @property
    def transport(self) -> str:
        return "webhook" if self._webhook_url else "polling"

    async def start(self, on_message: OnChatMessage) -> None:
        self._on_message = on_message
        self._poller = asyncio.create_task(self._receive(), name=f"telegram:{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        try:
            await self.bot.shutdown()
        except Exception:
            log.debug("telegram %s: shutdown error ignored", self.name)

    async def _receive(self) -> None:
        """Connect (retrying until Telegram answers), then long-poll unless a webhook feeds us."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._connect()
                break
            except (RateLimited, Retryable, Terminal) as exc:
                self._down(exc)
                await self._pause(delay)
                delay = min(delay * 2, CHAT_DOWN_RETRY)
        if self._webhook_url is not None:
            return
        await self._poll()

    async def _connect(self) -> None:
        await call("getMe", self.bot.initialize)
        if self._webhook_url is not None:
            await call(
                "setWebhook",
                lambda: self.bot.set_webhook(
                    self._webhook_url or "", secret_token=self._secret, allowed_updates=UPDATES
                ),
            )
        else:
            # getUpdates and a webhook exclude each other (409 Conflict).
            await call("deleteWebhook", lambda: self.bot.delete_webhook(drop_pending_updates=False))
        self._ok()
        log.info("telegram %s: connected as @%s (%s)", self.name, self.bot.username, self.transport)

    async def _poll(self) -> None:
        """Confirm an update (the next offset) only after it was handled, so a crash re-reads it."""
        offset: int | None = None
        delay = 1.0

        async def fetch() -> tuple[Update, ...]:
            return await self.bot.get_updates(
                offset=offset, timeout=self.config.poll_timeout, allowed_updates=UPDATES
            )

        while not self._stopping.is_set():
            try:
                updates = await call("getUpdates", fetch)
            except (RateLimited, Retryable, Terminal) as exc:
                self._down(exc)
                await self._pause(exc.retry_after if isinstance(exc, RateLimited) else delay)
                delay = min(delay * 2, CHAT_DOWN_RETRY)
                continue
            self._ok()
            delay = 1.0
            for update in updates:
                while not self._stopping.is_set():
                    try:
                        await self._dispatch(update)
                        break
                    except Exception:
                        log.exception(
                            "telegram %s: handling update %s failed", self.name, update.update_id
                        )
                        await self._pause(5.0)
                offset = update.update_id + 1

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _ok(self) -> None:
        self._state = {"state": "ok", "last_error": None, "last_ok": time.time()}

    def _down(self, exc: Exception) -> None:
        log.warning("telegram %s: %s", self.name, exc)
        self._state = {**self._state, "state": "down", "last_error": str(exc)}

    def health(self) -> dict[str, object]:
        return {**self._state, "transport": self.transport, "threads": self.threaded}

    def webhook_doc(self) -> WebhookDoc | None:
        return WEBHOOK_DOC if self._webhook_url is not None else None

    async def accept_webhook(self, headers: dict[str, str], body: bytes) -> WebhookAnswer | None:
        given = headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise Forbidden("missing or wrong X-Telegram-Bot-Api-Secret-Token")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"malformed update: {exc}") from None
        if not isinstance(data, dict):
            raise BadRequest("malformed update: expected a JSON object")
        try:
            update = Update.de_json(data, self.bot)
        except Exception as exc:
            # Pure data conversion: whatever it raises (even OSError, for a date no clock
            # shows) is the update's fault, never ours.
            raise BadRequest(f"malformed update: {type(exc).__name__}: {exc}") from None
        if update is None:
            raise BadRequest("malformed update: empty")
        if (field := telegram_update.problem(update)) is not None:
            raise BadRequest(f"malformed update: field {field!r} is missing or of the wrong type")
        await self._dispatch(update)
        return None

    async def _dispatch(self, update: Update) -> None:
        message = update.message or update.edited_message
        if message is None or message.chat.id != self.config.chat_id or self._on_message is None:
            return
        translated = self._translate(
            message, edited=update.edited_message is not None, event_id=str(update.update_id)
        )
        if translated is not None:
            await self._on_message(translated)

    def _translate(self, message: Message, *, edited: bool, event_id: str) -> ChatMessage | None:
        has_media = bool(
            message.photo
            or message.document
            or message.sticker
            or message.voice
            or message.video
            or message.video_note
            or message.animation
            or message.audio
            or message.contact
            or message.location
        )
        text = message.text if message.text is not None else message.caption
        if text is None and not has_media:
            return None  # service messages: topic created/closed, members joined, …
        # message_thread_id is also set on plain reply chains: only is_topic_message means a topic.
        thread = str(message.message_thread_id) if message.is_topic_message else None
        reply = message.reply_to_message
        reply_to = context = None
        if reply is not None:
            ours = reply.from_user is not None and reply.from_user.id == self.bot.id
            if reply.forum_topic_created is not None:
                # In a topic Telegram points at the topic's first message when there is no
                # explicit reply; if we created the topic, its name names the number.
                context = reply.forum_topic_created.name if ours else None
            else:
                reply_to = str(reply.message_id)
                context = (reply.text or None) if ours and not self.threaded else None
        sender = message.from_user
        if sender is not None:
            user = ChatUser(
                str(sender.id), sender.full_name or sender.username or str(sender.id), sender.is_bot
            )
        else:  # an anonymous admin or a channel: never on an allow-list of user ids
            chat = message.sender_chat
            user = ChatUser(
                f"chat:{chat.id if chat else 0}", chat.title or "anonymous" if chat else "anonymous"
            )
        return ChatMessage(
            chat=self.name,
            message_id=str(message.message_id),
            thread_id=thread,
            reply_to=reply_to,
            user=user,
            text=text,
            edited=edited,
            has_media=has_media,
            event_id=event_id,
            context=context,
        )

    def allows(self, user: ChatUser) -> bool:
        return user.id.isdigit() and int(user.id) in self.config.allowed_user_ids

    def limits(self, message: bool) -> Sequence[tuple[str, Rate]]:
        pacing = self.config.pacing
        overall = (f"telegram:{self._bot_id}", pacing.overall.rate())
        if not message:
            return (overall,)
        chat = (self.hold_key, pacing.chat.rate())
        if self._group:
            return (chat, (self.hold_key, pacing.group.rate()), overall)
        return (chat, overall)

    async def open_thread(self, title: str) -> str:
        topic = await call(
            "createForumTopic",
            lambda: self.bot.create_forum_topic(self.config.chat_id, name=title),
        )
        return str(topic.message_thread_id)

    async def reopen_thread(self, thread_id: str) -> None:
        try:
            await call(
                "reopenForumTopic",
                lambda: self.bot.reopen_forum_topic(self.config.chat_id, int(thread_id)),
            )
        except Terminal as exc:
            if "topic_not_modified" not in exc.reason.lower():
                raise  # already open is fine: someone reopened it first

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
