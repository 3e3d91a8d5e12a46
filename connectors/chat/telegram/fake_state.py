"""In-memory world of the fake Telegram server: chats, topics, messages, updates, rate limits."""

from __future__ import annotations

import asyncio
import copy
import enum
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.testing.server import wait_until
from connectors.chat.telegram.spec import ApiError, default_update_kinds, icon_colors, update_kinds


class _AnyThread(enum.Enum):
    ANY = "any"


ANY_THREAD: Final = _AnyThread.ANY
"""Default of ``sent_messages(thread_id=...)``: messages of every thread."""

# Flood control counts what creates messages; reactions and edits only count per bot.
_SENDS: Final = ("sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "copyMessage")
MESSAGE_METHODS: Final = frozenset({*_SENDS, "forwardMessage", "createForumTopic"})
_EDITS: Final = ("Text", "Caption", "Media", "ReplyMarkup")
OVERALL_ONLY_METHODS: Final = frozenset(
    {"setMessageReaction"} | {f"editMessage{e}" for e in _EDITS}
)
_SERVICE_KEYS: Final = [f"forum_topic_{e}" for e in ("created", "edited", "closed", "reopened")]


@dataclass
class FakeLimits:
    """Sliding-window flood limits (messages, seconds); ``None`` disables one."""

    per_chat: tuple[int, float] | None = (1, 1.0)
    group: tuple[int, float] | None = (20, 60.0)
    overall: tuple[int, float] | None = (30, 1.0)

    @classmethod
    def off(cls) -> FakeLimits:
        return cls(per_chat=None, group=None, overall=None)


@dataclass
class Call:
    """One API call as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float
    status: int


@dataclass
class Topic:
    thread_id: int
    name: str
    closed: bool = False
    deleted: bool = False
    icon_color: int = 7322096
    icon_custom_emoji_id: str | None = None


@dataclass
class Chat:
    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    is_forum: bool = False
    next_message_id: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    topics: dict[int, Topic] = field(default_factory=dict)
    reactions: dict[int, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title is not None:
            out["title"] = self.title
        if self.first_name is not None:
            out["first_name"] = self.first_name
        if self.is_forum:
            out["is_forum"] = True
        return out


class SlidingWindows:
    """Counts events per key in sliding time windows."""

    def __init__(self) -> None:
        self._hits: dict[tuple[object, ...], deque[float]] = {}

    def acquire(self, windows: list[tuple[tuple[object, ...], tuple[int, float]]]) -> int | None:
        """Record one event in every window, or return the retry_after that a full one imposes."""
        now = time.monotonic()
        waits: list[float] = []
        for key, (limit, seconds) in windows:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - seconds:
                hits.popleft()
            if limit <= 0:
                waits.append(seconds)
            elif len(hits) >= limit:
                waits.append(hits[len(hits) - limit] + seconds - now)
        if waits:
            return max(1, math.ceil(max(waits)))
        for key, _ in windows:
            self._hits[key].append(now)
        return None


def is_service(message: dict[str, Any]) -> bool:
    return any(key in message for key in _SERVICE_KEYS)


def thread_of(message: dict[str, Any]) -> int | None:
    """Topic id of a message; reply-chain ``message_thread_id`` values are not topics."""
    if message.get("is_topic_message"):
        thread: int = message["message_thread_id"]
        return thread
    return None


class FakeTelegramState:
    """Chats, messages and updates, plus what a human can do and what a test can inspect."""

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

    def _thread(self, chat: Chat, thread_id: int | None) -> Topic | None:
        """The topic a bot call addresses; only live forum topics are threads one can use."""
        topic = None if thread_id is None else chat.topics.get(thread_id)
        if thread_id is not None and (topic is None or topic.deleted or not chat.is_forum):
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

    # -- human actions ----------------------------------------------------------------------
    def user_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = None,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        first_name: str = "Alice",
        username: str | None = None,
        is_bot: bool = False,
        photo: bool = False,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """A human posts; with ``photo=True`` the text (if no caption) becomes the caption."""
        chat = self._human_chat(chat_id)
        if chat.type == "private" and user_id != chat_id:
            raise ValueError("in a private chat the user id equals the chat id")
        if thread_id is not None:
            self._live_topic(chat, thread_id)
        target = None
        if reply_to is not None:
            target = chat.messages.get(reply_to)
            if target is None:
                raise ValueError(f"message {reply_to} does not exist in chat {chat_id}")
        sender: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if username is not None:
            sender["username"] = username
        content: dict[str, Any] = {}
        if photo:
            content["photo"] = self._photo_sizes(b"\xff\xd8fake-jpeg\xff\xd9")
            if (shown := text if caption is None else caption) is not None:
                content["caption"] = shown
        elif text is not None:
            content["text"] = text
        msg = self._new_message(chat, sender, content, thread_id=thread_id, reply_to=target)
        self._enqueue("message", msg)
        return msg

    def user_edit(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        msg = self._human_chat(chat_id).messages.get(message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist in chat {chat_id}")
        msg["text" if "text" in msg else "caption"] = text
        msg["edit_date"] = int(time.time())
        self._enqueue("edited_message", msg)
        return msg

    def redeliver(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """Hand the bot an existing message again as a ``message`` update, whoever sent it.

        Telegram never gives a bot the messages it sent itself through the Bot API; this is for
        tests that prove the bridge drops one if it arrives anyway (a second bridge on the same
        bot token, an update replayed by hand): the bot's own post, exactly as it was stored.
        """
        msg = self._human_chat(chat_id).messages.get(message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist in chat {chat_id}")
        self._enqueue("message", msg)
        return msg

    def create_topic_by_human(self, chat_id: int, name: str, user_id: int = 1) -> int:
        chat = self._human_chat(chat_id)
        if not chat.is_forum:
            raise ValueError(f"chat {chat_id} is not a forum")
        topic = self._open_topic(chat, self._human(user_id), name, None)
        self._enqueue("message", chat.messages[topic.thread_id])
        return topic.thread_id

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Deleted by a human: like Telegram, the bot is not told."""
        chat = self._human_chat(chat_id)
        self._purge_topic(chat, self._live_topic(chat, thread_id))

    def close_topic(self, chat_id: int, thread_id: int, user_id: int = 1) -> None:
        self._human_topic_state(chat_id, thread_id, user_id, closed=True)

    def reopen_topic(self, chat_id: int, thread_id: int, user_id: int = 1) -> None:
        self._human_topic_state(chat_id, thread_id, user_id, closed=False)

    def _human_topic_state(self, chat_id: int, thread_id: int, user_id: int, closed: bool) -> None:
        chat = self._human_chat(chat_id)
        topic = self._live_topic(chat, thread_id)
        msg = self._toggle_topic(chat, topic, self._human(user_id), closed=closed)
        if msg is not None:
            self._enqueue("message", msg)

    def _toggle_topic(
        self, chat: Chat, topic: Topic, sender: dict[str, Any], *, closed: bool
    ) -> dict[str, Any] | None:
        """Close/reopen with its service message; None when it already was in that state."""
        if topic.closed == closed:
            return None
        topic.closed = closed
        key = "forum_topic_closed" if closed else "forum_topic_reopened"
        return self._new_message(chat, sender, {key: {}}, thread_id=topic.thread_id)

    def _human(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": "Admin"}

    # -- files ------------------------------------------------------------------------------
    def _store_file(self, folder: str, data: bytes, extension: str = "jpg") -> dict[str, Any]:
        """Keep bytes for getFile + download; returns the common file fields."""
        number = len(self._files) + 1
        file_id, unique_id = f"AgAD{number:06d}fake", f"AQAD{number:06d}"
        self._files[file_id] = (f"{folder}/file_{number}.{extension}", unique_id, data)
        return {"file_id": file_id, "file_unique_id": unique_id, "file_size": len(data)}

    def _photo_sizes(self, data: bytes) -> list[dict[str, Any]]:
        small = {**self._store_file("photos", data), "width": 90, "height": 90}
        return [small, {**self._store_file("photos", data), "width": 800, "height": 800}]

    # -- inspection -------------------------------------------------------------------------
    def file_bytes(self, file_id: str) -> bytes:
        """The content of a file the bot uploaded (a photo size, a document)."""
        return self._files[file_id][2]

    def sent_messages(
        self, chat_id: int, thread_id: int | _AnyThread | None = ANY_THREAD
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
