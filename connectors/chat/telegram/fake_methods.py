"""Bot API methods of the fake Telegram server that act on chats: send, edit, react, topics."""

from __future__ import annotations

import time
from typing import Any

from connectors.chat.telegram.fake_humans import FakeTelegramHumans
from connectors.chat.telegram.fake_records import (
    MESSAGE_METHODS,
    OVERALL_ONLY_METHODS,
    Chat,
    Params,
    Topic,
)
from connectors.chat.telegram.spec import ApiError, Upload

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class FakeTelegramMethods(FakeTelegramHumans):
    """``_on_<method>`` handlers the server calls by name (sendMessage -> _on_send_message)."""

    async def _on_get_me(self, p: Params) -> Any:
        flags = ["can_read_all_group_messages", "supports_inline_queries", "has_main_web_app"]
        flags += ["can_connect_to_business", "allows_users_to_create_topics"]
        me = {**self.bot_user(), "can_join_groups": True, **dict.fromkeys(flags, False)}
        return {**me, "has_topics_enabled": self.has_topics_enabled}

    # -- sending ----------------------------------------------------------------------------
    async def _on_send_message(self, p: Params) -> Any:
        return self._send("sendMessage", p, {"text": p["text"]})

    async def _on_send_photo(self, p: Params) -> Any:
        content = {"photo": self._photo_sizes(self._file_bytes(p["photo"]))}
        return self._send("sendPhoto", p, content)

    async def _on_send_document(self, p: Params) -> Any:
        document = p["document"]
        data = self._file_bytes(document)
        doc = self._store_file("documents", data, "bin")
        if isinstance(document, Upload):
            doc.update(file_name=document.filename, mime_type=document.content_type)
        return self._send("sendDocument", p, {"document": doc})

    def _file_bytes(self, value: Upload | str) -> bytes:
        if isinstance(value, Upload):
            return value.data
        return self._files[value][2] if value in self._files else b""

    def _send(self, method: str, p: Params, content: Params) -> Params:
        chat = self._chat(p["chat_id"])
        if p.get("caption"):
            content["caption"] = p["caption"]
        thread_id = p.get("message_thread_id")
        topic = self._thread(chat, thread_id)
        if topic is not None and topic.closed:
            raise ApiError(400, "Bad Request: TOPIC_CLOSED")
        reply = self._reply_target(chat, p)
        self._rate_limit(method, chat)
        return self._new_message(
            chat, self.bot_user(), content, thread_id=thread_id, reply_to=reply
        )

    def _reply_target(self, chat: Chat, p: Params) -> Params | None:
        params = p.get("reply_parameters")
        if isinstance(params, dict):
            message_id, allow = params.get("message_id"), params.get("allow_sending_without_reply")
        else:
            message_id, allow = p.get("reply_to_message_id"), p.get("allow_sending_without_reply")
        if message_id is None:
            return None
        target = chat.messages.get(message_id)
        if target is None and not allow:
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    async def _on_edit_message_text(self, p: Params) -> Any:
        if p.get("inline_message_id"):
            return True
        chat = self._chat(p["chat_id"])
        msg = chat.messages.get(p["message_id"])
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg["from"]["id"] != self.bot_id or "text" not in msg:
            raise ApiError(400, "Bad Request: message can't be edited")
        if msg["text"] == p["text"] and msg.get("reply_markup") == p.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        self._rate_limit("editMessageText", chat)
        msg["text"], msg["edit_date"] = p["text"], int(time.time())
        return msg

    async def _on_set_message_reaction(self, p: Params) -> Any:
        chat = self._chat(p["chat_id"])
        if p["message_id"] not in chat.messages:
            raise ApiError(400, "Bad Request: message to react not found")
        self._rate_limit("setMessageReaction", chat)
        chat.reactions[p["message_id"]] = [r["emoji"] for r in p.get("reaction") or []]
        return True

    # -- forum topics -----------------------------------------------------------------------
    def _forum(self, p: Params, *, private: bool = True) -> Chat:
        """The chat of a topic call: a forum supergroup, or (``private``: the methods whose
        spec names "a private chat with a user") a private chat with Threaded Mode on."""
        chat = self._chat(p["chat_id"])
        if not (chat.is_forum or (private and self._has_topics(chat))):
            raise ApiError(400, "Bad Request: the chat is not a forum")
        return chat

    def _topic(self, p: Params, *, private: bool = True) -> tuple[Chat, Topic]:
        chat = self._forum(p, private=private)
        topic = chat.topics.get(p["message_thread_id"])
        if topic is None or topic.deleted:
            raise ApiError(400, "Bad Request: TOPIC_ID_INVALID")
        return chat, topic

    async def _on_create_forum_topic(self, p: Params) -> Any:
        chat = self._forum(p)
        self._rate_limit("createForumTopic", chat)
        topic = self._open_topic(chat, self.bot_user(), p["name"], p.get("icon_color"))
        if p.get("icon_custom_emoji_id"):
            topic.icon_custom_emoji_id = p["icon_custom_emoji_id"]
        result = {"message_thread_id": topic.thread_id, "name": topic.name}
        result["icon_color"] = topic.icon_color
        if topic.icon_custom_emoji_id:
            result["icon_custom_emoji_id"] = topic.icon_custom_emoji_id
        return result

    async def _on_edit_forum_topic(self, p: Params) -> Any:
        chat, topic = self._topic(p)
        change: Params = {}
        if p.get("name") and p["name"] != topic.name:
            topic.name = change["name"] = p["name"]
        emoji = p.get("icon_custom_emoji_id")
        if emoji is not None and (emoji or None) != topic.icon_custom_emoji_id:
            topic.icon_custom_emoji_id = emoji or None
            change["icon_custom_emoji_id"] = emoji
        if not change:
            raise ApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
        self._new_message(
            chat, self.bot_user(), {"forum_topic_edited": change}, thread_id=topic.thread_id
        )
        return True

    async def _on_close_forum_topic(self, p: Params) -> Any:
        return self._set_topic_closed(p, closed=True)

    async def _on_reopen_forum_topic(self, p: Params) -> Any:
        return self._set_topic_closed(p, closed=False)

    def _set_topic_closed(self, p: Params, *, closed: bool) -> bool:
        # closeForumTopic and reopenForumTopic are for forum supergroups only (Bot API 9.4).
        chat, topic = self._topic(p, private=False)
        if self._toggle_topic(chat, topic, self.bot_user(), closed=closed) is None:
            raise ApiError(400, "Bad Request: TOPIC_NOT_MODIFIED")
        return True

    async def _on_delete_forum_topic(self, p: Params) -> Any:
        chat, topic = self._topic(p)
        self._purge_topic(chat, topic)
        return True

    # -- chats and misc ---------------------------------------------------------------------
    async def _on_get_chat(self, p: Params) -> Any:
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        accepted = dict.fromkeys((*gifts, "gifts_from_channels"), False)
        info = {**self._chat(p["chat_id"]).as_dict(), "accent_color_id": 0}
        return {**info, "max_reaction_count": 11, "accepted_gift_types": accepted}

    async def _on_send_chat_action(self, p: Params) -> Any:
        self._thread(self._chat(p["chat_id"]), p.get("message_thread_id"))
        return True

    async def _on_delete_message(self, p: Params) -> Any:
        chat = self._chat(p["chat_id"])
        if chat.messages.pop(p["message_id"], None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        chat.reactions.pop(p["message_id"], None)
        return True

    async def _on_get_file(self, p: Params) -> Any:
        entry = self._files.get(p["file_id"])
        if entry is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, unique_id, data = entry
        file = {"file_id": p["file_id"], "file_unique_id": unique_id, "file_path": path}
        return {**file, "file_size": len(data)}

    def _generic(self, method: str, p: Params) -> Any:
        if method in MESSAGE_METHODS or method in OVERALL_ONLY_METHODS:
            chat = self._chat(p["chat_id"]) if "chat_id" in p else None
            self._rate_limit(method, chat)
        return True
