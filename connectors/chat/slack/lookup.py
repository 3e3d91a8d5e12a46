"""Slack look-ups an event waits on before its answer: bounded in time, cached, finished later."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bridge.errors import DeliveryError, Retryable
from connectors.chat.slack.calls import call
from connectors.chat.slack.events import Identity, plain_text

log = logging.getLogger(__name__)

REMEMBER = 10_000  # names, thread titles kept in memory
# Slack wants its answer within 3 s and the event is stored before it: a look-up may hold that
# up only briefly. One that takes longer goes on in the background for the next event.
QUICK = 0.5


def bounded_put(cache: OrderedDict[str, str], key: str, value: str) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > REMEMBER:
        cache.popitem(last=False)


class Lookups:
    """Who we are, people's names and our threads' titles, for one Slack channel."""

    def __init__(self, chat: str, channel: str, client: Callable[[], AsyncWebClient]) -> None:
        self._chat = chat
        self._channel = channel
        self._client = client
        self.me: Identity | None = None
        self._me_task: asyncio.Task[Identity] | None = None
        self._names: OrderedDict[str, str] = OrderedDict()
        self._titles: OrderedDict[str, str] = OrderedDict()  # thread_ts -> its first message
        self._running: dict[str, asyncio.Task[str | None]] = {}

    async def identity(self, wait: float | None = None) -> Identity:
        """auth.test, once; ``wait`` bounds how long this caller waits for it (Retryable)."""
        if self.me is not None:
            return self.me
        task = self._me_task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._me_task = asyncio.create_task(self._auth_test())
            # A failure nobody waits for any more is reported by the next call, not as a warning.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
        # asyncio.wait leaves the task running for the next caller (and, unlike wait_for on
        # Python 3.11, never swallows a cancellation of this one).
        await asyncio.wait({task}, timeout=wait)
        if not task.done():
            raise Retryable("Slack has not said who the bot is yet (auth.test)")
        return task.result()

    async def _auth_test(self) -> Identity:
        data = await call("auth.test", self._client().auth_test)
        self.me = Identity(
            str(data["team_id"]), str(data["user_id"]), str(data.get("bot_id") or "")
        )
        return self.me

    async def name(self, user_id: str) -> str | None:
        """The person's display name, or None when Slack does not tell us quickly."""
        known = self._names.get(user_id)
        if known is not None:
            return known
        return await self._quick(f"user:{user_id}", lambda: self._users_info(user_id))

    async def _users_info(self, user_id: str) -> str | None:
        data = await call("users.info", lambda: self._client().users_info(user=user_id))
        info = data.get("user") or {}
        profile = info.get("profile") or {}
        found = (
            profile.get("display_name")
            or profile.get("real_name")
            or info.get("real_name")
            or info.get("name")
        )
        if not found:
            return None
        bounded_put(self._names, user_id, str(found))
        return str(found)

    def remember_title(self, thread_ts: str, title: str) -> None:
        """What a thread's first message says, as we posted it (no need to ask Slack)."""
        bounded_put(self._titles, thread_ts, title)

    async def title(self, thread_ts: str) -> str | None:
        """The text of our thread's first message: how a reply finds its number when the
        store lost the thread (a crash after posting it, before recording it)."""
        known = self._titles.get(thread_ts)
        if known is not None:
            return known or None
        return await self._quick(f"thread:{thread_ts}", lambda: self._parent(thread_ts))

    async def _parent(self, thread_ts: str) -> str | None:
        # The one message by its ts (limit=1 gives the parent alone): never a history search.
        data = await call(
            "conversations.replies",
            lambda: self._client().conversations_replies(
                channel=self._channel, ts=thread_ts, limit=1
            ),
        )
        messages: list[Any] = data.get("messages") or []
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        text = first.get("text") if first.get("ts") == thread_ts else None
        title = plain_text(text) if isinstance(text, str) else ""
        bounded_put(self._titles, thread_ts, title)
        return title or None

    async def _quick(self, key: str, fetch: Callable[[], Awaitable[str | None]]) -> str | None:
        """``fetch``'s answer if it comes within QUICK, else None; one fetch per key at a time."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._quietly(key, fetch), name=f"slack:{key}")
            self._running[key] = task
            task.add_done_callback(lambda _done: self._running.pop(key, None))
        await asyncio.wait({task}, timeout=QUICK)
        if not task.done():
            log.info("slack %s: %s is slow; going on without it", self._chat, key)
            return None
        return task.result()

    async def _quietly(self, key: str, fetch: Callable[[], Awaitable[str | None]]) -> str | None:
        try:
            return await fetch()
        except DeliveryError as exc:
            log.info("slack %s: no answer for %s: %s", self._chat, key, exc.reason)
            return None

    async def stop(self) -> None:
        tasks = [t for t in (self._me_task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
