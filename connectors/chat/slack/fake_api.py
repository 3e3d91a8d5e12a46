"""The fake Slack's Web API methods: what each one checks, changes and answers."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from connectors.chat.slack.fake_state import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Channel,
    Ephemeral,
    FakeSlackState,
    SlackFile,
)

Params = dict[str, Any]
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]+$")
_MAX_TEXT = 40_000  # Slack truncates beyond this; the bridge must never get near it


class SlackError(Exception):
    """An ``ok: false`` answer (HTTP 200 unless rate limited or broken)."""

    def __init__(self, code: str, *, status: int = 200, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after = retry_after


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "reactions"}


class SlackApiMethods(FakeSlackState):
    """One ``_on_<method>`` per Web API method; each raises ``SlackError`` as Slack answers."""

    def _upload_url(self, file_id: str) -> str:
        raise NotImplementedError

    def _file_url(self, f: SlackFile) -> str:
        raise NotImplementedError

    def _socket_url(self) -> str:
        raise NotImplementedError

    def _writable(self, channel_id: object) -> Channel:
        channel = self.channels.get(channel_id) if isinstance(channel_id, str) else None
        if channel is None:
            raise SlackError("channel_not_found")
        if channel.archived:
            raise SlackError("is_archived")
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        return channel

    def _message(self, channel: Channel, ts: object) -> dict[str, Any]:
        message = channel.messages.get(ts) if isinstance(ts, str) else None
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _rate_limit(self, channel: Channel) -> None:
        if self.limits.post_per_channel is None:
            return
        limit, seconds = self.limits.post_per_channel
        times = self._post_times.setdefault(channel.id, [])
        now = time.monotonic()
        times[:] = [t for t in times if t > now - seconds]
        if len(times) >= limit:
            wait = max(1, math.ceil(times[0] + seconds - now))
            raise SlackError("ratelimited", status=429, retry_after=wait)
        times.append(now)

    def _bot_message(self, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "text": text,
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "ts": self.new_ts(),
            "team": TEAM_ID,
            "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": "smsbridge", "deleted": False},
        }

    def _thread_parent(self, channel: Channel, thread_ts: object) -> str | None:
        """The thread a post joins. A reply's ts is followed to its parent, as Slack does."""
        if not thread_ts:
            return None
        parent = channel.messages.get(thread_ts) if isinstance(thread_ts, str) else None
        if parent is None:
            # Assumption: Slack documents no error for a thread_ts whose message is gone;
            # the post lands in the channel itself. Recorded so a test can see it happen.
            self.violations.append(f"post into thread {thread_ts} whose first message is gone")
            return None
        own = parent.get("thread_ts")
        if own and own != parent["ts"]:
            self.violations.append(f"thread_ts {thread_ts} is a reply; use its parent's ts")
            return str(own)
        return str(parent["ts"])

    # -- identity and connections -------------------------------------------------------------
    def _on_auth_test(self, p: Params) -> Params:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "smsbridge",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _on_apps_connections_open(self, p: Params) -> Params:
        return {"url": self._socket_url()}

    # -- messages -----------------------------------------------------------------------------
    def _on_chat_postMessage(self, p: Params) -> Params:
        channel = self._writable(p["channel"])
        text = p.get("text")
        if not (text or p.get("blocks") or p.get("attachments")):
            raise SlackError("no_text")
        if isinstance(text, str) and len(text) > _MAX_TEXT:
            self.violations.append(f"chat.postMessage: text of {len(text)} characters")
        thread_ts = self._thread_parent(channel, p.get("thread_ts"))
        self._rate_limit(channel)
        message = self._bot_message(text or "")
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            if _flag(p.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._store(channel, message)
        return {"channel": channel.id, "ts": message["ts"], "message": _public(message)}

    def _on_chat_postEphemeral(self, p: Params) -> Params:
        channel = self._writable(p["channel"])
        if p["user"] not in self.users:
            raise SlackError("user_not_in_channel")
        if not (p.get("text") or p.get("blocks") or p.get("attachments")):
            raise SlackError("no_text")
        ts = self.new_ts()
        thread = p.get("thread_ts") or None
        self.ephemerals.append(Ephemeral(channel.id, p["user"], p.get("text") or "", thread, ts))
        return {"message_ts": ts}

    def _on_chat_update(self, p: Params) -> Params:
        channel = self._writable(p["channel"])
        message = self._message(channel, p["ts"])
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_update_message")
        if not (p.get("text") or p.get("blocks") or p.get("attachments")):
            raise SlackError("no_text")
        before = dict(message)
        message["text"] = p.get("text") or ""
        message["edited"] = {"user": BOT_USER_ID, "ts": self.new_ts()}
        self._changed(channel, message, before)
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}

    def _on_chat_delete(self, p: Params) -> Params:
        channel = self._writable(p["channel"])
        message = self._message(channel, p["ts"])
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_delete_message")
        self.user_delete(channel.id, message["ts"])
        return {"channel": channel.id, "ts": p["ts"]}

    # -- reactions ----------------------------------------------------------------------------
    def _reaction_target(self, p: Params) -> tuple[dict[str, Any], str]:
        name = p["name"]
        if not isinstance(name, str) or not _EMOJI_NAME.match(name):
            raise SlackError("invalid_name")
        if not p.get("channel") or not p.get("timestamp"):
            raise SlackError("no_item_specified")
        channel = self._writable(p["channel"])
        return self._message(channel, p["timestamp"]), name

    def _on_reactions_add(self, p: Params) -> Params:
        message, name = self._reaction_target(p)
        reactions = message.setdefault("reactions", [])
        found = next((r for r in reactions if r["name"] == name), None)
        if found is not None and BOT_USER_ID in found["users"]:
            raise SlackError("already_reacted")
        if found is None:
            found = {"name": name, "users": [], "count": 0}
            reactions.append(found)
        found["users"].append(BOT_USER_ID)
        found["count"] += 1
        return {}

    def _on_reactions_remove(self, p: Params) -> Params:
        message, name = self._reaction_target(p)
        reactions = message.get("reactions", [])
        found = next((r for r in reactions if r["name"] == name), None)
        if found is None or BOT_USER_ID not in found["users"]:
            raise SlackError("no_reaction")
        found["users"].remove(BOT_USER_ID)
        found["count"] -= 1
        if not found["users"]:
            reactions.remove(found)
        return {}

    # -- reading ------------------------------------------------------------------------------
    def _on_conversations_info(self, p: Params) -> Params:
        channel = self.channels.get(p["channel"])
        if channel is None:
            raise SlackError("channel_not_found")
        return {
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "is_channel": True,
                "is_private": False,
                "is_archived": channel.archived,
                "is_member": channel.bot_member,
                "created": 1_700_000_000,
            }
        }

    def _on_conversations_replies(self, p: Params) -> Params:
        channel = self._writable(p["channel"])
        parent = channel.messages.get(p["ts"])
        if parent is None:
            raise SlackError("thread_not_found")
        root = parent.get("thread_ts") or parent["ts"]
        thread = [
            _public(m)
            for ts, m in sorted(channel.messages.items())
            if ts == root or m.get("thread_ts") == root
        ]
        limit = min(max(int(p.get("limit") or 1000), 1), 1000)  # Slack clamps, it does not refuse
        # Slack pages a thread from its first message; the cursor is the next one's ts.
        answer: Params = {"messages": thread[:limit], "has_more": len(thread) > limit}
        if len(thread) > limit:
            answer["response_metadata"] = {"next_cursor": f"ts:{thread[limit]['ts']}"}
        return answer

    def _on_users_info(self, p: Params) -> Params:
        user = self.users.get(p["user"])
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    # -- files (upload v2) --------------------------------------------------------------------
    def _on_files_getUploadURLExternal(self, p: Params) -> Params:
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.files[file_id] = SlackFile(file_id, str(p["filename"]), int(p["length"]))
        return {"upload_url": self._upload_url(file_id), "file_id": file_id}

    def _on_files_completeUploadExternal(self, p: Params) -> Params:
        items = p["files"]
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                raise SlackError("invalid_arguments") from None
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments")
        uploaded: list[SlackFile] = []
        for item in items:
            file_id = item.get("id") if isinstance(item, dict) else None
            found = self.files.get(file_id) if isinstance(file_id, str) else None
            if found is None or found.data is None:
                raise SlackError("file_not_found")
            found.title = item.get("title") or found.name
            uploaded.append(found)
        answer = [{"id": f.id, "title": f.title} for f in uploaded]
        channel_id = p.get("channel_id")
        if not channel_id:
            return {"files": answer}  # uploaded but shared nowhere (private to the app)
        channel = self._writable(channel_id)
        thread = self._thread_parent(channel, p.get("thread_ts"))
        message = self._bot_message(p.get("initial_comment") or "")
        message.update(
            subtype="file_share", upload=True, files=[self.file_object(f) for f in uploaded]
        )
        if thread is not None:
            message["thread_ts"] = thread
        for f in uploaded:
            f.channel, f.thread_ts = channel.id, thread
        self._store(channel, message)
        return {"files": answer}

    def _on_files_info(self, p: Params) -> Params:
        found = self.files.get(p["file"])
        if found is None or found.data is None:
            raise SlackError("file_not_found")
        return {"file": self.file_object(found)}

    def file_object(self, f: SlackFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "name": f.name,
            "title": f.title or f.name,
            "size": len(f.data or b""),
            "mimetype": f.mimetype,
            "user": f.user,
            "url_private": self._file_url(f),
        }

    def uploads(self, channel_id: str, thread_ts: str | None = None) -> list[SlackFile]:
        """Files the bot shared in a channel (or one of its threads)."""
        return [
            f
            for f in self.files.values()
            if f.channel == channel_id and (thread_ts is None or f.thread_ts == thread_ts)
        ]


async def read_params(request: Request) -> dict[str, Any]:
    """Query string merged with a form or JSON body: slack_sdk uses all three."""
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(data, dict):
            raise SlackError("json_not_object")
        params.update({k: v for k, v in data.items() if v is not None})
    else:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params
