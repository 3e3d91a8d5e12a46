"""The fields the bridge reads of a Telegram update, checked: PTB converts without checking.

Telegram itself never sends a wrong type, but a webhook endpoint takes whatever comes with the
secret, and a list where text belongs would otherwise fail deep in the core (a 5xx).
"""

from __future__ import annotations

from typing import Any

# (path, type, may be absent); bool is checked before int, since a bool is an int to Python.
_FIELDS: tuple[tuple[str, type | tuple[type, ...], bool], ...] = (
    ("update_id", int, False),
    ("chat.id", int, False),
    ("message_id", int, False),
    ("text", str, True),
    ("caption", str, True),
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
    return None
