"""Receiving Telegram updates: connect, then long-poll getUpdates or take them by webhook."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time

from telegram import Bot, Update

from bridge.errors import BadRequest, Forbidden, RateLimited, Retryable, Terminal
from bridge.models import WebhookAnswer, WebhookDoc
from bridge.openapi import NUMBER, header_scheme, obj
from bridge.ports import OnChatMessage
from connectors.chat.telegram import update as telegram_update
from connectors.chat.telegram.calls import CHAT_DOWN_RETRY, call
from connectors.chat.telegram.config import TelegramConfig

log = logging.getLogger(__name__)

UPDATES = ["message", "edited_message"]


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


class UpdateReceiver:
    """The updates of one bot for one chat, handed to the core one at a time, in order."""

    def __init__(
        self, bot: Bot, config: TelegramConfig, webhook_url: str | None, secret: str
    ) -> None:
        self.bot = bot
        self.config = config
        self.name = config.name
        self._webhook_url = webhook_url  # None: long polling
        self._secret = secret
        self._on_message: OnChatMessage | None = None
        self._connector: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._state: dict[str, object] = {"state": "starting", "last_error": None}
        self._private_topics = False  # a private chat whose bot has Threaded Mode on (getMe)

    @property
    def transport(self) -> str:
        return "webhook" if self._webhook_url else "polling"

    @property
    def threaded(self) -> bool:
        """Topics: in a forum (by the config), or in a private chat once getMe has said that
        the bot has them (``has_topics_enabled``, Bot API 9.3+)."""
        return self.config.threaded or self._private_topics

    def topics_refused(self, reason: str) -> None:
        """Telegram refused a topic in the private chat: none until the next start asks getMe."""
        if self._private_topics:
            log.warning(
                "telegram %s: no topics in the private chat from now on: %s", self.name, reason
            )
        self._private_topics = False

    async def start(self, on_message: OnChatMessage) -> None:
        self._on_message = on_message
        if self._topics_unknown():
            # Whether a private chat has topics decides how its first SMS is shown: ask now,
            # once; if Telegram does not answer, the connector below keeps asking.
            try:
                await self._connect()
                self._connected.set()
                return
            except (RateLimited, Retryable, Terminal) as exc:
                self._down(exc)
        self._connector = asyncio.create_task(self._receive(), name=f"telegram:{self.name}")

    def _topics_unknown(self) -> bool:
        return self.config.chat_id > 0 and self.config.threads == "auto"

    async def stop(self) -> None:
        self._stopping.set()
        await self.stop_consuming()
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)

    async def start_consuming(self) -> None:
        """Long-poll getUpdates from here on (this instance owns the chat's duty). In webhook
        mode there is nothing to fetch: Telegram pushes to whichever instance it reaches."""
        if self._webhook_url is None and self._consumer is None:
            self._consumer = asyncio.create_task(self._consume(), name=f"telegram:{self.name}")

    async def stop_consuming(self) -> None:
        """Cancel the long poll, closing its connection: the next owner's would conflict."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            if self._connected.is_set():
                # A failing getUpdates is the next owner's to report now: a standby whose
                # connection works is healthy, or /healthz would stay 503 on it.
                self._state = {**self._state, "state": "ok", "last_error": None}

    def health(self) -> dict[str, object]:
        report = {**self._state, "transport": self.transport}
        if self._webhook_url is None:
            report["consumer"] = "active" if self._consumer is not None else "standby"
        return report

    def webhook_doc(self) -> WebhookDoc | None:
        return WEBHOOK_DOC if self._webhook_url is not None else None

    async def _receive(self) -> None:
        """Connect (retrying until Telegram answers): getMe, and set or delete our webhook."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._connect()
                break
            except (RateLimited, Retryable, Terminal) as exc:
                self._down(exc)
                await self._pause(delay)
                delay = min(delay * 2, CHAT_DOWN_RETRY)
        self._connected.set()

    async def _consume(self) -> None:
        await self._connected.wait()
        await self._poll()

    async def _connect(self) -> None:
        await call("getMe", self.bot.initialize)
        if self._topics_unknown():
            self._private_topics = bool(self.bot.bot.has_topics_enabled)
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
        translated = telegram_update.translate(
            message,
            chat=self.name,
            bot_id=self.bot.id,
            threaded=self.threaded,
            edited=update.edited_message is not None,
            event_id=str(update.update_id),
            username=self.bot.username,
        )
        if translated is not None:
            await self._on_message(translated)
