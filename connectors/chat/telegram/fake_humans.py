"""What people do in the fake Telegram's chats: post, edit, open, close and delete topics."""

from __future__ import annotations

import time
from typing import Any

from connectors.chat.telegram.fake_records import Chat, Topic
from connectors.chat.telegram.fake_state import FakeTelegramState


class FakeTelegramHumans(FakeTelegramState):
    """Human actions; each makes the update Telegram would send the bot (none for a deletion)."""

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
        photo: bool | bytes = False,
        document: tuple[str, str, bytes] | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        """A human posts; with a ``photo`` (True, or its JPEG bytes) or a ``document`` (name,
        MIME type, bytes) the text (if no caption) becomes the caption. The files can be
        fetched by getFile and downloaded, as the bot would."""
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
        if photo is not False or document is not None:
            if document is not None:
                name, mime_type, data = document
                stored = self._store_file("documents", data, name.rpartition(".")[2] or "bin")
                content["document"] = {**stored, "file_name": name, "mime_type": mime_type}
            else:
                jpeg = photo if isinstance(photo, bytes) else b"\xff\xd8fake-jpeg\xff\xd9"
                content["photo"] = self._photo_sizes(jpeg)
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
