"""Reading a Telegram update: its fields checked (PTB converts without checking), and the
message in it translated for the core.

Telegram itself never sends a wrong type, but a webhook endpoint takes whatever comes with the
secret, and a list where text belongs would otherwise fail deep in the core (a 5xx).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bridge.models import ChatFile, ChatMessage, ChatUser

if TYPE_CHECKING:
    from telegram import Message

# (path, type, may be absent); bool is checked before int, since a bool is an int to Python.
_FIELDS: tuple[tuple[str, type | tuple[type, ...], bool], ...] = (
    ("update_id", int, False),
    ("chat.id", int, False),
    ("message_id", int, False),
    ("text", str, True),
    ("caption", str, True),
    ("document.file_id", str, True),
    ("document.file_name", str, True),
    ("document.mime_type", str, True),
    ("document.file_size", int, True),
    ("message_thread_id", int, True),
    ("is_topic_message", bool, True),
    ("from_user.id", int, True),
    ("from_user.is_bot", bool, True),
    ("from_user.first_name", str, True),
    ("from_user.last_name", str, True),
    ("from_user.username", str, True),
    ("sender_chat.id", int, True),
    ("sender_chat.title", str, True),
    ("reply_to_message.message_id", int, True),
    ("reply_to_message.text", str, True),
    ("reply_to_message.from_user.id", int, True),
    ("reply_to_message.forum_topic_created.name", str, True),
)


def _at(root: Any, path: str) -> Any:
    value = root
    for name in path.split("."):
        if value is None:
            return None
        value = getattr(value, name, None)
    return value


def problem(update: Any) -> str | None:
    """The first field of a message update with a type Telegram never sends, or None."""
    message = update.message or update.edited_message
    if message is None:
        return None
    for path, kind, optional in _FIELDS:
        value = update.update_id if path == "update_id" else _at(message, path)
        if value is None and optional:
            continue
        if isinstance(value, bool) and kind is not bool:
            return path
        if not isinstance(value, kind):
            return path
    for size in message.photo or ():
        for name, kind in (
            ("file_id", str),
            ("file_unique_id", str),
            ("width", int),
            ("height", int),
        ):
            value = getattr(size, name, None)
            if isinstance(value, bool) or not isinstance(value, kind):
                return f"photo.{name}"
        if size.file_size is not None and not isinstance(size.file_size, int):
            return "photo.file_size"
    return None


def files_of(message: Message) -> tuple[ChatFile, ...]:
    """A photo (its largest size: Telegram lists them smallest first) or a document; the
    other media (stickers, voice, …) are not files a person would send as MMS."""
    if message.photo:
        largest = max(
            message.photo, key=lambda size: (size.width * size.height, size.file_size or 0)
        )
        name = f"photo_{largest.file_unique_id}.jpg"  # Telegram recompresses photos to JPEG
        return (ChatFile(largest.file_id, "image/jpeg", name, largest.file_size),)
    document = message.document
    if document is not None:
        kind = document.mime_type or "application/octet-stream"
        return (ChatFile(document.file_id, kind, document.file_name, document.file_size),)
    return ()


def translate(
    message: Message,
    *,
    chat: str,
    bot_id: int,
    threaded: bool,
    edited: bool,
    event_id: str,
    username: str | None = None,
) -> ChatMessage | None:
    """A message as the core sees it; None for service messages (topic created, joins, …).

    ``/status@<username>`` is ours and reaches the core as ``/status``; a command addressed to
    another bot keeps its ``@bot``, and the core leaves it alone."""
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
    if text is not None and username:
        text = re.sub(rf"^(/[A-Za-z_]+)@{re.escape(username)}\b", r"\1", text, flags=re.I)
    if text is None and not has_media:
        return None  # service messages: topic created/closed, members joined, …
    # message_thread_id is also set on plain reply chains: only is_topic_message means a topic.
    thread = str(message.message_thread_id) if message.is_topic_message else None
    reply = message.reply_to_message
    reply_to = context = None
    if reply is not None:
        ours = reply.from_user is not None and reply.from_user.id == bot_id
        if reply.forum_topic_created is not None:
            # In a topic Telegram points at the topic's first message when there is no
            # explicit reply; if we created the topic, its name names the number.
            context = reply.forum_topic_created.name if ours else None
        else:
            reply_to = str(reply.message_id)
            context = (reply.text or None) if ours and not threaded else None
    sender = message.from_user
    if sender is not None:
        user = ChatUser(
            str(sender.id), sender.full_name or sender.username or str(sender.id), sender.is_bot
        )
    else:  # an anonymous admin or a channel: never on an allow-list of user ids
        origin = message.sender_chat
        user = ChatUser(
            f"chat:{origin.id if origin else 0}",
            origin.title or "anonymous" if origin else "anonymous",
        )
    return ChatMessage(
        chat=chat,
        message_id=str(message.message_id),
        thread_id=thread,
        reply_to=reply_to,
        user=user,
        text=text,
        edited=edited,
        has_media=has_media,
        files=files_of(message) if has_media else (),
        event_id=event_id,
        context=context,
    )
