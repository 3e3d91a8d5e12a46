"""Faithful local fake of the Telegram Bot API server (HTTP layer, API methods, webhook push)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.testing.server import serve
from connectors.chat.telegram.fake_state import (
    ANY_THREAD,
    MESSAGE_METHODS,
    OVERALL_ONLY_METHODS,
    Call,
    Chat,
    FakeLimits,
    FakeTelegramState,
    Topic,
)
from connectors.chat.telegram.spec import (
    ApiError,
    Upload,
    canonical_method,
    decode_params,
    read_params,
)

__all__ = ["ANY_THREAD", "Call", "FakeLimits", "FakeTelegram", "Topic"]

_log = logging.getLogger(__name__)
Params = dict[str, Any]
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_POLL_SECONDS = 50.0
_WEBHOOK_RETRY_SECONDS = 0.2
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    remaining: int


class _Superseded(ApiError):
    """A long poll terminated by a newer getUpdates (Telegram answers it with 409)."""


class FakeTelegram(FakeTelegramState):
    """Bot API server for the real PTB client: ``Bot(token, base_url=f"{fake.base_url}/bot")``.

    Anything the spec forbids lands in ``violations``; tests should end with it empty.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",  # noqa: S107 - the fake's well-known test token
        *,
        limits: FakeLimits | None = None,
        bot_id: int = 123456,
        bot_username: str = "smsbridge_bot",
        latency: float = 0.0,
    ) -> None:
        self._poll_generation = 0
        self.waiting_polls = 0  # getUpdates calls holding on for an update right now
        super().__init__(bot_id=bot_id, bot_username=bot_username, limits=limits or FakeLimits())
        self.token = token
        self.latency = latency
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._http: httpx.AsyncClient | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._closing = False

    def reset(self) -> None:
        """Start over with an empty world on the same server (``limits`` stay as they are)."""
        super().reset()
        self._failures: dict[str, _Failure] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._poll_generation += 1  # a long poll from before must not serve the new world

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> str:
        if self._stack is None:
            stack = contextlib.AsyncExitStack()
            self.base_url = await stack.enter_async_context(serve(self.app))
            self._stack = stack
            self._closing = False
            if self.webhook is not None:
                self._ensure_pusher()
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        self._notify()  # long polls answer at once instead of holding up the server's shutdown
        await self._stop_pusher()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        description: str = "Internal Server Error",
        count: int = 1,
        retry_after: int | None = None,
    ) -> None:
        name = canonical_method(method) or method
        self._failures[name.lower()] = _Failure(status, description, retry_after, count)

    # -- HTTP -------------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        at = time.monotonic()
        method = canonical_method(request.path_params["method"])
        name = method or request.path_params["method"]
        params: Params = {}
        try:
            if request.path_params["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            raw = await read_params(request)
            params = dict(raw)
            if method is None:
                self.violations.append(f"unknown method {name!r}")
                raise ApiError(404, "Not Found")
            decoded = decode_params(method, raw)
            params = decoded.params
            self.violations.extend(decoded.violations)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if decoded.error:
                raise ApiError(400, decoded.error)
            self._take_failure(method)
            # Implemented methods are named after the API method: sendMessage -> _on_send_message.
            handler = getattr(self, "_on_" + _CAMEL_RE.sub("_", method).lower(), None)
            result = await handler(params) if handler else self._generic(method, params)
            status, body = 200, {"ok": True, "result": result}
        except _Superseded as exc:
            if await request.is_disconnected():
                return Response(status_code=exc.status)  # nobody is listening; keep calls clean
            status, body = exc.status, exc.body()
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except Exception as exc:  # a bug in the fake must fail the test, not hang the client
            _log.exception("fake Telegram crashed in %s", name)
            self.violations.append(f"fake Telegram crashed in {name}: {exc!r}")
            status, body = 500, ApiError(500, "Internal Server Error").body()
        self.calls.append(Call(name, params, at, status))
        return JSONResponse(body, status_code=status)

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] == self.token:
            for path, _, data in self._files.values():
                if path == request.path_params["path"]:
                    return Response(data, media_type="application/octet-stream")
        return JSONResponse(ApiError(404, "Not Found").body(), status_code=404)

    def _take_failure(self, method: str) -> None:
        failure = self._failures.get(method.lower())
        if failure is None:
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            del self._failures[method.lower()]
        raise ApiError(failure.status, failure.description, failure.retry_after)

    # -- updates and webhook ----------------------------------------------------------------
    async def _on_get_me(self, p: Params) -> Any:
        flags = ["can_read_all_group_messages", "supports_inline_queries", "has_main_web_app"]
        flags += ["can_connect_to_business", "has_topics_enabled", "allows_users_to_create_topics"]
        return {**self.bot_user(), "can_join_groups": True, **dict.fromkeys(flags, False)}

    async def _on_get_updates(self, p: Params) -> Any:
        self._check_no_webhook()
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        offset = p.get("offset", 0)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        if "allowed_updates" in p:
            self._set_allowed_updates(p["allowed_updates"])
        limit = min(max(p.get("limit", 100), 1), 100)
        deadline = time.monotonic() + min(max(p.get("timeout", 0), 0), _MAX_POLL_SECONDS)
        while True:
            self._check_no_webhook()
            if generation != self._poll_generation:
                raise _Superseded(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            remaining = deadline - time.monotonic()
            if self._updates or self._closing or remaining <= 0:
                return self._updates[:limit]
            self.waiting_polls += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
            finally:
                self.waiting_polls -= 1

    def _check_no_webhook(self) -> None:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )

    async def _on_set_webhook(self, p: Params) -> Any:
        url, secret = p["url"], p.get("secret_token") or None
        if url == "":
            return await self._on_delete_webhook(p)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Bad Request: bad webhook: Failed to resolve host")
        if "allowed_updates" in p:
            self._set_allowed_updates(p["allowed_updates"])
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": p.get("allowed_updates"),
            "max_connections": p.get("max_connections", 40),
        }
        self._webhook_error = None
        self._notify()  # a pending long poll must stop serving updates now
        self._ensure_pusher()
        return True

    async def _on_delete_webhook(self, p: Params) -> Any:
        self.webhook = None
        await self._stop_pusher()
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _on_get_webhook_info(self, p: Params) -> Any:
        hook = self.webhook
        info: Params = {"url": hook["url"] if hook else "", "has_custom_certificate": False}
        info["pending_update_count"] = len(self._updates)
        if hook is not None:
            info["max_connections"] = hook["max_connections"]
            if hook["allowed_updates"]:
                info["allowed_updates"] = hook["allowed_updates"]
            if self._webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    def _ensure_pusher(self) -> None:
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push_loop())

    async def _stop_pusher(self) -> None:
        task, self._pusher = self._pusher, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _push_loop(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        while (hook := self.webhook) is not None and not self._closing:
            if not self._updates:
                await self._wakeup.wait()
                continue
            update = self._updates[0]
            headers = {}
            if hook["secret_token"]:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            try:
                response = await self._http.post(hook["url"], json=update, headers=headers)
                status = f"{response.status_code} {response.reason_phrase}"
                error = (
                    None if response.is_success else f"Wrong response from the webhook: {status}"
                )
            except httpx.HTTPError as exc:
                error = f"Connection failed: {type(exc).__name__}"
            if error is None:
                self._updates = [u for u in self._updates if u is not update]
                continue
            # Telegram keeps the update and retries; so do we, just much sooner.
            self._webhook_error = (int(time.time()), error)
            await asyncio.sleep(_WEBHOOK_RETRY_SECONDS)

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
    def _forum(self, p: Params) -> Chat:
        chat = self._chat(p["chat_id"])
        if not chat.is_forum:
            raise ApiError(400, "Bad Request: the chat is not a forum")
        return chat

    def _topic(self, p: Params) -> tuple[Chat, Topic]:
        chat = self._forum(p)
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
        chat, topic = self._topic(p)
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
