"""Records of the fake Telegram server's world: chats, topics, calls, flood limits."""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

Params = dict[str, Any]  # a Bot API call's parameters, or a JSON object of its answer


class AnyThread(enum.Enum):
    ANY = "any"


ANY_THREAD: Final = AnyThread.ANY
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
