"""Slack payloads -> ChatMessage: message events, edits, deletions, slash commands; text markup."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from bridge.models import (
    COMMAND_ARGUMENTS,
    COMMAND_WORDS,
    ChatFile,
    ChatMessage,
    ChatUser,
    WebhookDoc,
)
from bridge.openapi import TEXT, header_scheme, obj

# Subtypes that are a person writing: plain, "also send to channel", and with files.
_WRITTEN = frozenset({None, "thread_broadcast", "file_share", "me_message"})
_ENTITY = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
_MENTIONED = re.compile(r"[:,]?\s*([A-Za-z_]+)[?!.,:;]*(?:\s+(.*))?$", re.DOTALL)
SOMEONE = ChatUser("", "someone")  # Slack does not say who deleted a message
SLACKBOT = "USLACKBOT"  # Slack's own bot posts with a user id and no bot_id


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the bridge is in the workspace (from auth.test)."""

    team_id: str
    user_id: str  # the bot user
    bot_id: str


def plain_text(text: str) -> str:
    """Slack's markup as a person would read it: ``<@U1>`` -> @U1, links, entities decoded."""

    def entity(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "#")):
            return target[0] + label if label else target
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            return label or _SPECIAL.get(name, f"@{name}")
        if label and label not in target:
            return f"{label} ({target.removeprefix('mailto:')})"
        return label or target.removeprefix("mailto:")

    return html.unescape(_ENTITY.sub(entity, text))


def escape(text: str) -> str:
    """Text for Slack: the three characters its markup reserves, escaped as it asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def as_command(text: str, me: Identity) -> str:
    """Slack has no slash commands in threads: ``!close`` and a mention of the bot at the start
    (``@SMS close``) are the core's ``/close``. ``!`` with any other word is a plain text."""
    mention = re.match(rf"<@{re.escape(me.user_id)}(?:\|[^<>]*)?>", text)
    if mention is not None:
        # Said to the bot, never to the customer: a word (punctuation around it forgiven,
        # "@SMS: status?"), else the help.
        said = _MENTIONED.match(plain_text(text[mention.end() :]).strip())
        if said is None:
            return "/help"
        word, args = said.group(1), said.group(2)
        return f"/{word} {args}" if args else f"/{word}"
    plain = plain_text(text)
    if not plain.startswith("!"):
        return plain
    word, _, args = plain[1:].partition(" ")
    word = word.lower()
    if word in COMMAND_WORDS and (not args.strip() or word in COMMAND_ARGUMENTS):
        return f"/{plain[1:]}"
    return plain


def _thread_of(message: dict[str, Any]) -> str | None:
    """The thread a message is a reply in; a thread's first message is in none."""
    thread = message.get("thread_ts")
    if isinstance(thread, str) and thread and thread != message.get("ts"):
        return thread
    return None


def _event(body: dict[str, Any], channel: str) -> dict[str, Any] | None:
    event = body.get("event")
    if body.get("type") != "event_callback" or not isinstance(event, dict):
        return None
    if event.get("type") != "message" or event.get("channel") != channel:
        return None
    return event


def deletion(body: dict[str, Any], channel: str, chat: str) -> ChatMessage | None:
    """A message deleted in the channel, or a thread's first message left as a tombstone."""
    event = _event(body, channel)
    if event is None:
        return None
    event_id = body.get("event_id")
    if event.get("subtype") == "message_deleted":
        gone = event.get("deleted_ts")
        before = event.get("previous_message")
        thread = before.get("thread_ts") if isinstance(before, dict) else None
    elif event.get("subtype") == "message_changed":
        now = event.get("message")
        if not isinstance(now, dict) or now.get("subtype") != "tombstone":
            return None
        gone, thread = now.get("ts"), now.get("thread_ts") or now.get("ts")
    else:
        return None
    if not isinstance(gone, str):
        return None
    return ChatMessage(
        chat=chat,
        message_id=gone,
        thread_id=thread if isinstance(thread, str) else None,
        reply_to=None,
        user=SOMEONE,
        text=None,
        deleted=True,
        event_id=event_id if isinstance(event_id, str) else None,
    )


def message(body: dict[str, Any], channel: str, chat: str, me: Identity) -> ChatMessage | None:
    """A person's message or edit in the channel; None for what is not one (or is ours).

    The user's display name is left as their id; the caller looks names up.
    """
    event = _event(body, channel)
    if event is None:
        return None
    subtype = event.get("subtype")
    edited = subtype == "message_changed"
    if edited:
        current, before = event.get("message"), event.get("previous_message")
        if not isinstance(current, dict):
            return None
        # Slack also says "changed" when a reply is added, a link unfurls or a thread is
        # renamed: only a new text from its author is an edit.
        same = isinstance(before, dict) and before.get("text") == current.get("text")
        if "edited" not in current or same:
            return None
        source = current
    elif subtype in _WRITTEN or subtype == "bot_message":
        source = event
    else:
        return None  # joins, topic changes, deletions (handled before bolt's self filter) …
    user_id, bot_id = source.get("user"), source.get("bot_id")
    if user_id == me.user_id or (bot_id is not None and bot_id == me.bot_id):
        return None  # our own post, whatever bolt decided
    ts = source.get("ts")
    if not isinstance(ts, str):
        return None
    files = source.get("files")
    is_bot = bot_id is not None or subtype == "bot_message" or user_id == SLACKBOT
    who = user_id if isinstance(user_id, str) else f"bot:{bot_id or 'unknown'}"
    text = source.get("text")
    event_id = body.get("event_id")
    return ChatMessage(
        chat=chat,
        message_id=ts,
        thread_id=_thread_of(source),
        reply_to=None,
        user=ChatUser(who, who, is_bot),
        text=as_command(text, me) if isinstance(text, str) and text else None,
        edited=edited,
        has_media=bool(files),
        files=files_of(files),
        event_id=event_id if isinstance(event_id, str) else None,
    )


def files_of(files: object) -> tuple[ChatFile, ...]:
    """The files shared with a message, each by its ``url_private``; none at all when one of
    them cannot be downloaded (hidden by the plan's limit, deleted, external), since what
    goes out as MMS goes whole or not at all."""
    if not isinstance(files, list):
        return ()
    found = []
    for item in files:
        url = item.get("url_private") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return ()
        assert isinstance(item, dict)
        kind, name, size = item.get("mimetype"), item.get("name"), item.get("size")
        found.append(
            ChatFile(
                url,
                kind if isinstance(kind, str) and kind else "application/octet-stream",
                name if isinstance(name, str) and name else None,
                size if isinstance(size, int) and not isinstance(size, bool) else None,
            )
        )
    return tuple(found)


def our_thread(body: dict[str, Any], me: Identity) -> str | None:
    """The thread a message (or edit) is in, when the thread's first message is the bot's."""
    event = body.get("event")
    if not isinstance(event, dict):
        return None
    current = event.get("message")
    source = current if isinstance(current, dict) else event
    thread = _thread_of(source)
    return thread if thread is not None and source.get("parent_user_id") == me.user_id else None


def command(payload: dict[str, Any], chat: str) -> ChatMessage | None:
    """``/sms +1 555 … text`` as the text message the core understands."""
    name, user, trigger = payload.get("command"), payload.get("user_id"), payload.get("trigger_id")
    if not (isinstance(name, str) and isinstance(user, str) and isinstance(trigger, str)):
        return None
    args = payload.get("text")
    text = f"{name} {plain_text(args)}" if isinstance(args, str) and args.strip() else name
    who = payload.get("user_name")
    return ChatMessage(
        chat=chat,
        # No ts of its own: the trigger id is as unique, and a redelivery carries it again.
        message_id=trigger,
        thread_id=None,
        reply_to=None,
        user=ChatUser(user, who if isinstance(who, str) and who else user),
        text=text.strip(),
        event_id=None,
        private=True,  # Slack shows a slash command to its author alone
    )


# Bolt reads Slack's envelope without checking types (Slack never gets them wrong). A signed
# request that does is refused here rather than crash bolt into a 5xx, which Slack retries.
_OBJECTS = ("event", "message", "previous_message", "view", "container", "assistant_thread")
_OBJECTS_OR_IDS = ("user", "channel", "team", "enterprise")
_TEXTS = ("type", "subtype", "text", "ts", "thread_ts", "bot_id", "user_team", "event_id")


def envelope_problem(body: dict[str, Any]) -> str | None:
    """The first field whose type Slack never sends, or None."""
    event = body.get("event")
    for prefix, part in (("", body), ("event.", event if isinstance(event, dict) else {})):
        for key, value in part.items():
            if key in _OBJECTS and not isinstance(value, dict):
                return f"{prefix}{key}"
            if key in _OBJECTS_OR_IDS and not isinstance(value, str | dict | None):
                return f"{prefix}{key}"
            if key in _TEXTS and not isinstance(value, str | None):
                return f"{prefix}{key}"
    for key in ("authorizations", "actions"):
        value = body.get(key)
        if key in body and not (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            return key
    return None


# What Slack sends to the Request URL, for GET /openapi.json (api.slack.com/apis/events-api).
WEBHOOK_DOC = WebhookDoc(
    "Slack Events API, slash commands and interactivity",
    security={
        "slackSignature": header_scheme(
            "X-Slack-Signature",
            'v0=hex(HMAC-SHA256(signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + body))',
        ),
        "slackTimestamp": header_scheme(
            "X-Slack-Request-Timestamp", "unix seconds, refused when over 5 minutes off"
        ),
    },
    bodies={
        "application/json": obj(
            {"type": {"type": "string", "examples": ["event_callback", "url_verification"]}},
            {"event_id": TEXT, "team_id": TEXT, "challenge": TEXT, "event": obj({"type": TEXT})},
        ),
        "application/x-www-form-urlencoded": obj(
            {},
            {
                "command": TEXT,
                "text": TEXT,
                "user_id": TEXT,
                "channel_id": TEXT,
                "payload": {"type": "string", "description": "interactivity: JSON"},
            },
        ),
    },
    answer={
        "application/json": {"type": "object", "description": "url_verification's challenge"},
        "text/plain": {"type": "string", "description": "empty, or a slash command's reply"},
    },
)
