"""How the fake Telegram server hands out updates: getUpdates long polls, or webhook pushes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.chat.telegram.fake_methods import FakeTelegramMethods
from connectors.chat.telegram.fake_records import FakeLimits, Params
from connectors.chat.telegram.spec import ApiError

_MAX_POLL_SECONDS = 50.0
_WEBHOOK_RETRY_SECONDS = 0.2


class Superseded(ApiError):
    """A long poll terminated by a newer getUpdates (Telegram answers it with 409)."""


class FakeTelegramUpdates(FakeTelegramMethods):
    """getUpdates, setWebhook, deleteWebhook, getWebhookInfo and the task that pushes."""

    def __init__(self, *, bot_id: int, bot_username: str, limits: FakeLimits) -> None:
        self._poll_generation = 0
        self.waiting_polls = 0  # getUpdates calls holding on for an update right now
        super().__init__(bot_id=bot_id, bot_username=bot_username, limits=limits)
        self._http: httpx.AsyncClient | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._closing = False

    def reset(self) -> None:
        super().reset()
        self._webhook_error: tuple[int, str] | None = None
        self._poll_generation += 1  # a long poll from before must not serve the new world

    def _open_updates(self) -> None:
        """The server is up: a webhook set before resumes its pushes."""
        self._closing = False
        if self.webhook is not None:
            self._ensure_pusher()

    async def _close_updates(self) -> None:
        self._closing = True
        self._notify()  # long polls answer at once instead of holding up the server's shutdown
        await self._stop_pusher()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

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
                raise Superseded(
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
