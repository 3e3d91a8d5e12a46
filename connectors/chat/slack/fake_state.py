"""In-memory world of the fake Slack: channels, messages, reactions, files, and what people do."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.testing.server import wait_until
from connectors.chat.slack.spec import event as event_spec


class _AnyThread(enum.Enum):
    ANY = "any"


ANY_THREAD: Final = _AnyThread.ANY
"""Default of ``posts(thread_ts=...)``: messages of every thread and the channel itself."""

TEAM_ID: Final = "T0FAKETEAM"
APP_ID: Final = "A0FAKEAPP"
BOT_USER_ID: Final = "U0SMSBOT"
BOT_ID: Final = "B0SMSBOT"


@dataclass
class Call:
    """One Web API call as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float
    status: int
    error: str | None = None


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    thread_ts: str | None
    message_ts: str


@dataclass
class SlackFile:
    id: str
    name: str
    length: int
    title: str | None = None
    data: bytes | None = None
    channel: str | None = None
    thread_ts: str | None = None
    mimetype: str = "application/octet-stream"
    user: str = BOT_USER_ID  # who shared it


@dataclass
class Channel:
    id: str
    name: str
    bot_member: bool = True
    archived: bool = False
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message


@dataclass
class Limits:
    """Posting limits; ``None`` turns one off. Slack: about 1 message/s per channel."""

    post_per_channel: tuple[int, float] | None = None


class FakeSlackState:
    """The workspace: channels, people, messages; plus what a human does and a test inspects."""

    def __init__(self) -> None:
        self._last_ts = 0.0
        self._event_seq = 0
        self.limits = Limits()
        self.reset()

    def reset(self) -> None:
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.files: dict[str, SlackFile] = {}
        self.revoked = False
        self._post_times: dict[str, list[float]] = {}
        self.add_user(BOT_USER_ID, "smsbridge", is_bot=True)

    # -- the world ----------------------------------------------------------------------------
    def add_channel(
        self, channel_id: str, name: str = "support", *, bot_member: bool = True
    ) -> None:
        self.channels[channel_id] = Channel(channel_id, name, bot_member=bot_member)

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name.lower().replace(" ", "."),
            "real_name": name,
            "is_bot": is_bot,
            "deleted": False,
            "profile": {"real_name": name, "display_name": name, "team": TEAM_ID},
        }

    def new_ts(self) -> str:
        """Slack timestamps are unique per channel and increase; ours are unique everywhere."""
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def next_event_id(self) -> str:
        self._event_seq += 1
        return f"Ev{self._event_seq:010X}"

    def envelope(self, event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """The Events API ``event_callback`` wrapping ``event``."""
        kind = event.get("type", "")
        if event_spec(kind) is None:
            self.violations.append(f"fake produced an event of unknown type {kind!r}")
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or self.next_event_id(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }

    def _deliver(self, kind: str, payload: dict[str, Any]) -> None:
        """Hand an event or command to whatever connection the app has (the server does it)."""
        raise NotImplementedError

    def _channel(self, channel_id: object) -> Channel:
        channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
        if channel is None:
            raise ValueError(f"no channel {channel_id!r} in the fake; add_channel first")
        return channel

    def _store(
        self, channel: Channel, message: dict[str, Any], deliver: bool = True
    ) -> dict[str, Any]:
        """Keep a new message, link it to its thread, and tell the app about it."""
        channel.messages[message["ts"]] = message
        parent_ts = message.get("thread_ts")
        if parent_ts and parent_ts != message["ts"]:
            parent = channel.messages.get(parent_ts)
            if parent is not None:
                parent["thread_ts"] = parent_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                if message.get("user") and message["user"] not in users:
                    users.append(message["user"])
                parent["latest_reply"] = message["ts"]
                message["parent_user_id"] = parent.get("user")
        event = {**message, "channel": channel.id, "event_ts": message["ts"]}
        event["channel_type"] = "channel"
        event.pop("reactions", None)
        if deliver:
            self._deliver("events_api", self.envelope(event))
        return message

    def event_of(self, channel_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """The Events API envelope Slack would send for a message of the channel."""
        event = {**message, "channel": channel_id, "event_ts": message["ts"]}
        event["channel_type"] = "channel"
        event.pop("reactions", None)
        return self.envelope(event)

    # -- what people do -----------------------------------------------------------------------
    def user_message(
        self,
        channel_id: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        files: list[dict[str, Any]] | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A person writes in the channel, or in a thread; the app gets the event (unless
        ``deliver`` is false: then a test sends ``event_of(...)`` itself)."""
        channel = self._channel(channel_id)
        if user not in self.users:
            self.add_user(user, f"User {user}")
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": self.new_ts(),
            "team": TEAM_ID,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            if broadcast:
                message["subtype"] = "thread_broadcast"
        if files:
            message["subtype"] = "file_share"
            message["files"] = files
            message["upload"] = False
        return self._store(channel, message, deliver)

    def other_bot_message(
        self, channel_id: str, text: str, *, thread_ts: str | None = None, bot_id: str = "B0OTHER"
    ) -> dict[str, Any]:
        """An integration's post (legacy ``bot_message``: a ``bot_id`` and no ``user``)."""
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": bot_id,
            "username": "other-bot",
            "text": text,
            "ts": self.new_ts(),
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return self._store(self._channel(channel_id), message)

    def user_edit(self, channel_id: str, ts: str, text: str) -> dict[str, Any]:
        """A person edits their message: ``message_changed`` with the new text."""
        channel = self._channel(channel_id)
        message = channel.messages[ts]
        before = dict(message)
        message["text"] = text
        message["edited"] = {"user": message.get("user"), "ts": self.new_ts()}
        self._changed(channel, message, before)
        return message

    def _changed(self, channel: Channel, message: dict[str, Any], before: dict[str, Any]) -> None:
        event = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel.id,
            "channel_type": "channel",
            "ts": self.new_ts(),
            "message": {k: v for k, v in message.items() if k != "reactions"},
            "previous_message": {k: v for k, v in before.items() if k != "reactions"},
        }
        event["event_ts"] = event["ts"]
        self._deliver("events_api", self.envelope(event))

    def user_delete(self, channel_id: str, ts: str, *, tombstone: bool = False) -> None:
        """A person (an admin, for a bot's post) deletes a message.

        A thread's first message may stay as a "This message was deleted." tombstone that
        keeps its replies (``tombstone=True``: a ``message_changed`` event), or go entirely
        (``message_deleted``).
        """
        channel = self._channel(channel_id)
        message = channel.messages[ts]
        if tombstone:
            before = dict(message)
            message.clear()
            message.update(
                type="message",
                subtype="tombstone",
                text="This message was deleted.",
                user="USLACKBOT",
                hidden=True,
                ts=ts,
                thread_ts=ts,
                reply_count=before.get("reply_count", 0),
            )
            self._changed(channel, message, before)
            return
        del channel.messages[ts]
        event = {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel.id,
            "channel_type": "channel",
            "ts": self.new_ts(),
            "deleted_ts": ts,
            "previous_message": {k: v for k, v in message.items() if k != "reactions"},
        }
        event["event_ts"] = event["ts"]
        self._deliver("events_api", self.envelope(event))

    def slash_command(
        self, channel_id: str, user: str, command: str, text: str = ""
    ) -> dict[str, str]:
        """A person runs ``/command text`` in the channel; Slack posts the form to the app."""
        channel = self._channel(channel_id)
        if user not in self.users:
            self.add_user(user, f"User {user}")
        payload = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel.id,
            "channel_name": channel.name,
            "user_id": user,
            "user_name": self.users[user]["name"],
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0FAKETEAM/1/fake",
            "trigger_id": f"{int(time.time())}.{self._event_seq}.{uuid.uuid4().hex[:16]}",
        }
        self._event_seq += 1
        self._deliver("slash_commands", payload)
        return payload

    # -- what a test inspects -----------------------------------------------------------------
    def posts(
        self, channel_id: str, thread_ts: str | _AnyThread | None = ANY_THREAD
    ) -> list[dict[str, Any]]:
        """The bot's messages, oldest first: all, top-level only (None), or one thread's replies."""
        mine = [
            m
            for m in self._channel(channel_id).messages.values()
            if m.get("bot_id") == BOT_ID and m.get("subtype") != "file_share"
        ]
        if thread_ts is ANY_THREAD:
            return mine
        if thread_ts is None:
            return [m for m in mine if m.get("thread_ts") in (None, m["ts"])]
        return [m for m in mine if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]

    def texts(self, channel_id: str, thread_ts: str | _AnyThread | None = ANY_THREAD) -> list[str]:
        return [m.get("text", "") for m in self.posts(channel_id, thread_ts)]

    def message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        return self._channel(channel_id).messages.get(ts)

    def parents(self, channel_id: str) -> list[dict[str, Any]]:
        """The bot's top-level posts that still exist (one per number's thread)."""
        return self.posts(channel_id, None)

    def reactions(self, channel_id: str, ts: str) -> list[str]:
        """Reaction names the bot has on a message, in the order they were added."""
        message = self._channel(channel_id).messages.get(ts) or {}
        return [r["name"] for r in message.get("reactions", []) if BOT_USER_ID in r["users"]]

    def count(self, method: str, error: str | None = None, status: int | None = None) -> int:
        return sum(
            1
            for c in self.calls
            if c.method == method
            and (error is None or c.error == error)
            and (status is None or c.status == status)
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
                f"fake Slack: last calls: {[(c.method, c.error) for c in self.calls[-8:]]}; "
                f"violations: {self.violations}"
            ),
        )
