"""Slack via slack_sdk and bolt (the one import): a thread per number; Events API or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.errors import DeliveryError, Terminal, ThreadGone
from bridge.models import ChatFile, ChatUser, Status
from bridge.pacing import Rate
from bridge.ports import CallKind, OnChatMessage
from connectors.chat.slack.calls import CHAT_DOWN_RETRY, call
from connectors.chat.slack.config import SlackConfig, check_configs
from connectors.chat.slack.events import escape
from connectors.chat.slack.files import download
from connectors.chat.slack.lookup import bounded_put
from connectors.chat.slack.receive import SlackReceiver

__all__ = ["SlackChat", "SlackConfig", "check_configs"]

log = logging.getLogger(__name__)

STATUS_REACTION = {
    Status.PENDING: "hourglass_flowing_sand",
    Status.QUEUED: "hourglass_flowing_sand",
    Status.SENT: "outbox_tray",
    Status.FAILED: "x",
    Status.DELIVERED: "white_check_mark",
}
# Slack shows a message's first 40,000 characters; long ones read badly well before that,
# and escaping (& -> &amp;) lengthens a part after it was cut.
MAX_TEXT = 3500
_TS = re.compile(r"^\d+\.\d+$")


class SlackChat(SlackReceiver):
    """One Slack channel; each number is a thread under a first message naming it."""

    threaded = True
    max_text = MAX_TEXT

    def __init__(self, config: SlackConfig, webhook_url: str | None) -> None:
        super().__init__(config)
        self.hold_key = f"slack:{config.channel}"
        self.reactions_key = f"{self.hold_key}:reactions"
        self.request_url = webhook_url  # what to enter as the Slack app's Request URL
        self.transport = "socket_mode" if config.app_token else "events_api"
        self._session: aiohttp.ClientSession | None = None
        self._connector: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._shown: OrderedDict[str, str] = OrderedDict()  # ts -> status reaction on it
        self._state: dict[str, object] = {"state": "starting", "last_error": None}

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, on_message: OnChatMessage) -> None:
        self._on_message = on_message
        self._session = aiohttp.ClientSession()
        base = str(self.config.base_url)
        self._client = AsyncWebClient(
            token=self.config.bot_token.get_secret_value(),
            base_url=base,
            timeout=math.ceil(self.config.timeout),
            session=self._session,
            retry_handlers=[],  # the core retries, from the store, after Retry-After
            logger=log,
        )
        self._app = self._build_app(AsyncWebClient(base_url=base, session=self._session))
        try:
            # Now, not on the first event: that must be answered within Slack's 3 seconds.
            await self._lookups.identity()
        except DeliveryError as exc:
            self._down(exc.reason)  # the connector below keeps asking
        self._connector = asyncio.create_task(self._connect(), name=f"slack:{self.name}")

    async def _connect(self) -> None:
        """Learn who we are (retrying until Slack answers), then open Socket Mode if used."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._lookups.identity()
                if self.config.app_token is not None:
                    await self._open_socket()
                self._ok()
                return
            except DeliveryError as exc:
                self._down(exc.reason)
            except Exception as exc:  # slack_sdk's Socket Mode connect raises what it meets
                self._down(f"Socket Mode connection failed: {type(exc).__name__}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, CHAT_DOWN_RETRY)

    async def stop(self) -> None:
        self._stopping.set()
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        await self._lookups.stop()
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()  # type: ignore[no-untyped-call]
        if self._session is not None:
            await self._session.close()

    def _ok(self) -> None:
        self._state = {"state": "ok", "last_error": None, "last_ok": time.time()}

    def _down(self, reason: str) -> None:
        log.warning("slack %s: %s", self.name, reason)
        self._state = {**self._state, "state": "down", "last_error": reason}

    def health(self) -> dict[str, object]:
        state = dict(self._state)
        if state["state"] == "ok" and self._socket is not None and not self._socket_up():
            # slack_sdk reconnects by itself; until it has, no event reaches us.
            state.update(state="down", last_error="Socket Mode connection lost; reconnecting")
        return {**state, "transport": self.transport, "channel": self.channel}

    def _socket_up(self) -> bool:
        assert self._socket is not None
        client = self._socket.client
        session = client.current_session
        return not (client.closed or client.stale or session is None or session.closed)

    def allows(self, user: ChatUser) -> bool:
        if user.is_bot or not user.id:
            return False
        return not self.config.allowed_user_ids or user.id in self.config.allowed_user_ids

    # -- posting --------------------------------------------------------------------------------
    def limits(self, call: CallKind) -> Sequence[tuple[str, Rate]]:
        pacing = self.config.pacing
        if call is CallKind.MESSAGE:
            return ((self.hold_key, pacing.channel.rate()),)
        reactions = (self.reactions_key, pacing.reactions.rate())
        if call is CallKind.STATUS:
            # A status change is two calls to Slack: the new reaction added, the old removed.
            # (The first change after a restart may remove more; a 429 then holds reactions.)
            return (reactions, reactions)
        return (reactions,)

    def _live(self, thread_id: str | None) -> str | None:
        if thread_id is not None and thread_id in self._gone:
            raise ThreadGone("Slack: the thread's first message was deleted")
        return thread_id

    async def open_thread(self, title: str) -> str:
        data = await call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=self.channel,
                text=escape(title),
                mrkdwn=False,  # an alias is shown as written, *stars* and all
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        self._lookups.remember_title(str(data["ts"]), title)
        return str(data["ts"])

    async def rename_thread(self, thread_id: str, title: str) -> None:
        ts = self._live(thread_id)
        await call(
            "chat.update",
            lambda: self.client.chat_update(channel=self.channel, ts=ts or "", text=escape(title)),
            in_thread=True,
        )
        self._lookups.remember_title(thread_id, title)

    async def post(self, thread_id: str | None, text: str, reply_to: str | None = None) -> str:
        thread = self._live(thread_id)
        if thread is None and reply_to is not None and _TS.match(reply_to):
            thread = reply_to  # a notice about a message in the channel: under it
        data = await call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=self.channel,
                text=escape(text),
                thread_ts=thread,
                mrkdwn=False,  # SMS text is plain: *, _ and ~ are not formatting
                unfurl_links=False,
                unfurl_media=False,
            ),
            in_thread=thread is not None,
        )
        return str(data["ts"])

    async def edit_text(self, message_id: str, text: str) -> None:
        await call(
            "chat.update",
            lambda: self.client.chat_update(channel=self.channel, ts=message_id, text=escape(text)),
        )

    async def post_private(self, thread_id: str | None, user_id: str, text: str) -> None:
        thread = thread_id if thread_id is None or thread_id not in self._gone else None
        await call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=self.channel, user=user_id, text=escape(text), thread_ts=thread
            ),
        )

    async def post_file(
        self,
        thread_id: str | None,
        name: str,
        content_type: str,
        data: bytes,
        reply_to: str | None = None,
    ) -> str:
        thread = self._live(thread_id)
        done = await call(
            "files.upload",
            lambda: self.client.files_upload_v2(
                channel=self.channel,
                thread_ts=thread,
                filename=name,
                file=data,
                title=name,
                request_file_info=False,
            ),
            in_thread=thread is not None,
        )
        uploaded = done.get("file") or {}
        # Slack shares the file a moment later and gives no message ts for it here.
        return f"file:{uploaded.get('id', '')}"

    async def show_status(self, message_id: str, status: Status) -> None:
        """Paced by the core as ``CallKind.STATUS``: one add and one remove."""
        name = STATUS_REACTION[status]
        before = self._shown.get(message_id)
        if before == name:
            return
        await self._react("reactions.add", message_id, name, "already_reacted")
        # After a restart we do not know which one is there: take off any earlier one.
        stale = (
            {before}
            if before is not None
            else {STATUS_REACTION[s] for s in Status if s.rank < status.rank} - {name}
        )
        for old in sorted(stale):
            await self._react("reactions.remove", message_id, old, "no_reaction")
        bounded_put(self._shown, message_id, name)

    async def _react(self, method: str, ts: str, name: str, harmless: str) -> None:
        make = (
            self.client.reactions_add if method == "reactions.add" else self.client.reactions_remove
        )
        try:
            await call(
                method,
                lambda: make(channel=self.channel, timestamp=ts, name=name),
                pacing_key=self.reactions_key,  # a 429 holds reactions; posting goes on
            )
        except Terminal as exc:
            if exc.raw_status != harmless:
                raise  # already so is fine: a retry after a lost answer

    async def fetch_file(self, file: ChatFile, limit: int) -> bytes:
        if self._session is None:
            raise RuntimeError("chat not started")
        token = self.config.bot_token.get_secret_value()
        base = str(self.config.base_url)
        return await download(self._session, token, base, file, limit, self.config.timeout)
