"""In-memory world of the fake Telegram server: chats, messages, updates, rate limits, files,
and what a test can inspect of it."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from bridge.testing.server import wait_until
from connectors.chat.telegram.fake_records import (
    ANY_THREAD,
    MESSAGE_METHODS,
    AnyThread,
    Call,
    Chat,
    FakeLimits,
    SlidingWindows,
    Topic,
    is_service,
    thread_of,
)
from connectors.chat.telegram.spec import ApiError, default_update_kinds, icon_colors, update_kinds


class FakeTelegramState:
    """Chats, messages and updates, and what a test can inspect; people act in ``fake_humans``."""

    def __init__(self, *, bot_id: int, bot_username: str, limits: FakeLimits) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = "SMS Bridge"
        self.limits = limits
        self._next_update_id = 1
        self._wakeup = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        """Forget chats, calls, updates, webhook and files; update ids keep increasing."""
        # The bot's Threaded Mode (@BotFather; getMe's has_topics_enabled, Bot API 9.3+):
        # topics in its private chats, which it may create (9.4), edit and delete.
        self.has_topics_enabled = False
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.webhook: dict[str, Any] | None = None
        self._chats: dict[int, Chat] = {}
        self._updates: list[dict[str, Any]] = []
        self._allowed_updates = default_update_kinds()
        self._windows = SlidingWindows()
        self._files: dict[str, tuple[str, str, bytes]] = {}  # file_id -> (path, unique id, data)
        self._notify()  # whoever waits (long poll, webhook pusher) re-reads the emptied world

    # -- chats ------------------------------------------------------------------------------
    def add_forum(self, chat_id: int, title: str = "Support") -> None:
        self._chats[chat_id] = Chat(chat_id, "supergroup", title=title, is_forum=True)

    def add_group(self, chat_id: int, title: str = "Group") -> None:
        self._chats[chat_id] = Chat(chat_id, "supergroup", title=title)

    def add_private(self, user_id: int, first_name: str = "Alice") -> None:
        self._chats[user_id] = Chat(user_id, "private", first_name=first_name)

    def _chat(self, chat_id: object) -> Chat:
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _has_topics(self, chat: Chat) -> bool:
        """A forum, or a private chat of a bot with Threaded Mode on."""
        return chat.is_forum or (chat.type == "private" and self.has_topics_enabled)

    def _thread(self, chat: Chat, thread_id: int | None) -> Topic | None:
        """The topic a bot call addresses; only live topics are threads one can use."""
        topic = None if thread_id is None else chat.topics.get(thread_id)
        if thread_id is not None and (topic is None or topic.deleted or not self._has_topics(chat)):
            raise ApiError(400, "Bad Request: message thread not found")
        return topic

    def _human_chat(self, chat_id: int) -> Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ValueError(
                f"chat {chat_id} does not exist in the fake; add_forum/add_group first"
            )
        return chat

    def _live_topic(self, chat: Chat, thread_id: int) -> Topic:
        topic = chat.topics.get(thread_id)
        if topic is None or topic.deleted:
            raise ValueError(f"chat {chat.id} has no live topic {thread_id}")
        return topic

    # -- messages and updates ---------------------------------------------------------------
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _new_message(
        self,
        chat: Chat,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        thread_id: int | None = None,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        msg: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": chat.as_dict(),
            "date": int(time.time()),
        }
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
            # Telegram presents every topic message as a reply to the topic's creation message.
            reply_to = reply_to or chat.messages.get(thread_id)
        elif reply_to is not None and chat.type == "supergroup":
            # Reply chains outside topics get a message_thread_id too (the chain's root).
            msg["message_thread_id"] = reply_to.get("message_thread_id", reply_to["message_id"])
        if reply_to is not None:
            msg["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        msg.update(content)
        chat.messages[message_id] = msg
        return msg

    def _open_topic(
        self, chat: Chat, sender: dict[str, Any], name: str, icon_color: int | None
    ) -> Topic:
        colors = icon_colors()
        color = colors[len(chat.topics) % len(colors)] if icon_color is None else icon_color
        topic = Topic(thread_id=chat.next_message_id, name=name, icon_color=color)
        chat.topics[topic.thread_id] = topic
        created = {"forum_topic_created": {"name": name, "icon_color": color}}
        self._new_message(chat, sender, created, thread_id=topic.thread_id)
        return topic

    def _purge_topic(self, chat: Chat, topic: Topic) -> None:
        topic.deleted = True
        doomed = [m for m, msg in chat.messages.items() if thread_of(msg) == topic.thread_id]
        for message_id in doomed:
            del chat.messages[message_id]
            chat.reactions.pop(message_id, None)

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        if kind not in self._allowed_updates:
            return  # like Telegram: updates the bot opted out of are never created
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._updates.append(update)
        self._notify()

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _set_allowed_updates(self, allowed: object) -> None:
        if isinstance(allowed, list) and allowed:
            unknown = [a for a in allowed if a not in update_kinds()]
            if unknown:
                self.violations.append(f"allowed_updates: unknown update types {unknown}")
            self._allowed_updates = frozenset(str(a) for a in allowed)
        elif isinstance(allowed, list):
            self._allowed_updates = default_update_kinds()

    def _rate_limit(self, method: str, chat: Chat | None) -> None:
        windows: list[tuple[tuple[object, ...], tuple[int, float]]] = []
        if self.limits.overall:
            windows.append((("overall",), self.limits.overall))
        if chat is not None and method in MESSAGE_METHODS:
            if self.limits.per_chat:
                windows.append((("chat", chat.id), self.limits.per_chat))
            if self.limits.group and chat.type in ("group", "supergroup"):
                windows.append((("group", chat.id), self.limits.group))
        retry_after = self._windows.acquire(windows)
        if retry_after is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    # -- files ------------------------------------------------------------------------------
    def _store_file(self, folder: str, data: bytes, extension: str = "jpg") -> dict[str, Any]:
        """Keep bytes for getFile + download; returns the common file fields."""
        number = len(self._files) + 1
        file_id, unique_id = f"AgAD{number:06d}fake", f"AQAD{number:06d}"
        self._files[file_id] = (f"{folder}/file_{number}.{extension}", unique_id, data)
        return {"file_id": file_id, "file_unique_id": unique_id, "file_size": len(data)}

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        # The thumbnail is other bytes, as Telegram's: whoever takes the wrong size can tell.
        thumbnail = b"\xff\xd8thumbnail\xff\xd9"
        small = {**self._store_file("photos", thumbnail), "width": 90, "height": 90}
        return [small, {**self._store_file("photos", data), "width": 800, "height": 800}]

    # -- inspection -------------------------------------------------------------------------
    def file_bytes(self, file_id: str) -> bytes:
        """The content of a file the bot uploaded (a photo size, a document)."""
        return self._files[file_id][2]

    def sent_messages(
        self, chat_id: int, thread_id: int | AnyThread | None = ANY_THREAD
    ) -> list[dict[str, Any]]:
        """Non-service messages the bot sent and that still exist; ``thread_id=None`` = General."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [
            msg
            for _, msg in sorted(chat.messages.items())
            if msg["from"]["id"] == self.bot_id
            and not is_service(msg)
            and (thread_id is ANY_THREAD or thread_of(msg) == thread_id)
        ]

    def topics(self, chat_id: int) -> list[Topic]:
        chat = self._chats.get(chat_id)
        return [] if chat is None else [t for _, t in sorted(chat.topics.items())]

    def reaction(self, chat_id: int, message_id: int) -> list[str]:
        chat = self._chats.get(chat_id)
        return [] if chat is None else list(chat.reactions.get(message_id, []))

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        chat = self._chats.get(chat_id)
        return None if chat is None else chat.messages.get(message_id)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed (getUpdates) or delivered (webhook)."""
        return list(self._updates)

    def count(self, method: str, status: int | None = None) -> int:
        wanted = method.lower()
        return sum(
            1
            for c in self.calls
            if c.method.lower() == wanted and (status is None or c.status == status)
        )

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper, not a cancellable operation
    ) -> None:
        await wait_until(
            predicate,
            timeout,
            lambda: (
                f"fake Telegram: last calls: {[(c.method, c.status) for c in self.calls[-8:]]}; "
                f"pending updates: {len(self._updates)}; violations: {self.violations}"
            ),
        )
