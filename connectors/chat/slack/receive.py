"""Slack in: Events API requests and Socket Mode envelopes through bolt, to ChatMessages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bridge.errors import BadRequest, NotFound, Retryable, Unauthenticated
from bridge.models import ChatMessage, ChatUser, WebhookAnswer, WebhookDoc
from bridge.ports import OnChatMessage
from connectors.chat.slack import events as slack_events
from connectors.chat.slack.calls import call
from connectors.chat.slack.config import SlackConfig
from connectors.chat.slack.lookup import QUICK, Lookups, bounded_put

log = logging.getLogger(__name__)

_EMPTY = WebhookAnswer(b"", "text/plain", 200)


# What bolt's AsyncApp reads from the environment when it is built: SLACK_CLIENT_ID with
# SLACK_CLIENT_SECRET would turn an OAuth install flow on. This app is configured by its
# chat section alone, so a variable meant for another tool cannot change what it does.
_BOLT_ENVIRONMENT = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_VERIFICATION_TOKEN",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
)


@contextlib.contextmanager
def _without_bolt_environment() -> Iterator[None]:
    """Hide bolt's variables while the app is built (synchronous: no other task sees it)."""
    saved = {name: os.environ.pop(name) for name in _BOLT_ENVIRONMENT if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _parse(text: str, content_type: str) -> tuple[str, dict[str, Any]]:
    """The request and the object it carries: an event (JSON) or a form."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
            parsed: Any = json.loads(text)
        else:
            parsed = dict(parse_qsl(text, keep_blank_values=True))
            if "payload" in parsed:  # interactivity: the JSON travels in one form field
                parsed = json.loads(parsed["payload"])
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed Slack request: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("malformed Slack request: expected an object")
    if (problem := slack_events.envelope_problem(parsed)) is not None:
        raise BadRequest(f"malformed Slack request: field {problem!r} has the wrong type")
    return text, parsed


class SlackReceiver:
    """The receiving half of a Slack chat: bolt verifies, filters and routes; we translate."""

    def __init__(self, config: SlackConfig) -> None:
        self.config = config
        self.name = config.name
        self.channel = config.channel
        secret = config.signing_secret
        self._verifier = SignatureVerifier(secret.get_secret_value()) if secret else None
        self._on_message: OnChatMessage | None = None
        self._client: AsyncWebClient | None = None
        self._app: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._lookups = Lookups(config.name, config.channel, lambda: self.client)
        self._handled: OrderedDict[str, str] = OrderedDict()
        self._gone: OrderedDict[str, str] = OrderedDict()  # thread parents people deleted

    @property
    def client(self) -> AsyncWebClient:
        assert self._client is not None, "start() first"
        return self._client

    def _build_app(self, client: AsyncWebClient) -> AsyncApp:
        # Bolt passes what a function's parameter names ask for, and counts a bound method's
        # ``self`` among them: it gets plain functions.
        async def authorize(team_id: str | None) -> AuthorizeResult:
            return await self._authorize(team_id)

        async def before_authorize(
            body: dict[str, Any], next: Callable[[], Awaitable[None]]
        ) -> BoltResponse | None:
            return await self._before_authorize(body, next)

        async def on_message(body: dict[str, Any]) -> None:
            await self._message_event(body)

        async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
            await self._command(ack, command)

        async def on_other() -> None:
            """Anything else we are subscribed to: acknowledged, nothing to do."""

        with _without_bolt_environment():
            app = AsyncApp(
                name=f"smsbridge-{self.name}",
                logger=logging.getLogger(f"{__name__}.bolt"),
                client=client,
                signing_secret=(
                    self.config.signing_secret.get_secret_value()
                    if self.config.signing_secret
                    else ""
                ),
                request_verification_enabled=self.config.signing_secret is not None,
                authorize=authorize,
                before_authorize=before_authorize,
                # Stored before Slack hears "OK": an event is never acknowledged and then lost.
                process_before_response=True,
            )
        app.event("message")(on_message)
        app.command(re.compile(r"^/"))(on_command)
        app.event(re.compile(r".*"))(on_other)
        return app

    async def _open_socket(self) -> None:
        assert self._app is not None
        assert self.config.app_token is not None
        if self._socket is None:
            self._socket = AsyncSocketModeHandler(
                self._app,
                self.config.app_token.get_secret_value(),
                logger=logging.getLogger(f"{__name__}.socket"),
                web_client=self.client,
            )
        await call("apps.connections.open", self._socket.connect_async)
        log.info("slack %s: Socket Mode connected", self.name)

    async def _authorize(self, team_id: str | None) -> AuthorizeResult:
        """Bolt's authorization from our one auth.test (bolt's own would answer 200 and drop
        the event when Slack is briefly unreachable; raising makes Slack deliver it again)."""
        # Learnt at start; if Slack has not answered yet, the event is refused (Slack retries)
        # rather than answered late.
        me = await self._lookups.identity(QUICK)
        if team_id is not None and team_id != me.team_id:
            log.warning("slack %s: an event from another workspace (%s)", self.name, team_id)
        return AuthorizeResult(
            enterprise_id=None,
            team_id=me.team_id,
            bot_token=self.config.bot_token.get_secret_value(),
            bot_id=me.bot_id,
            bot_user_id=me.user_id,
        )

    # -- receiving ------------------------------------------------------------------------------
    def webhook_doc(self) -> WebhookDoc | None:
        return slack_events.WEBHOOK_DOC if self._verifier is not None else None

    async def accept_webhook(self, headers: dict[str, str], body: bytes) -> WebhookAnswer | None:
        if self._verifier is None:
            raise NotFound(f"chat {self.name!r} uses Socket Mode; it takes no Events API requests")
        if self._app is None:
            raise Retryable(f"slack {self.name}: not started yet")
        try:
            raw = body.decode("utf-8")  # Slack signs UTF-8 text; anything else is not from it
        except UnicodeDecodeError:
            raise BadRequest("malformed Slack request: not UTF-8") from None
        stamp = headers.get("x-slack-request-timestamp", "")
        if not (stamp.isascii() and stamp.isdigit()) or not self._verifier.is_valid(
            raw, stamp, headers.get("x-slack-signature")
        ):
            raise Unauthenticated("missing, wrong or stale X-Slack-Signature")
        text, parsed = _parse(raw, headers.get("content-type", ""))
        event_id = parsed.get("event_id")
        if isinstance(event_id, str) and event_id in self._handled:
            return _EMPTY  # Slack retrying what we already stored (X-Slack-Retry-Num)
        bolt_headers: dict[str, str | Sequence[str]] = dict(headers)
        request = AsyncBoltRequest(body=text, headers=bolt_headers)
        if request.body != parsed:
            # Bolt reads any form whose text contains "payload" as an interactive payload, and
            # would lose a slash command that mentions the word.
            request.body = parsed
            request.context = build_async_context(AsyncBoltContext({}), parsed)
        response = await self._app.async_dispatch(request)
        return self._answer(response)

    def _answer(self, response: BoltResponse) -> WebhookAnswer | None:
        body = (response.body or "").encode()
        if response.status == 200:
            kind = (response.headers.get("content-type") or ["text/plain"])[0]
            return WebhookAnswer(body, kind.split(";")[0], 200) if body else _EMPTY
        if response.status == 401:
            raise Unauthenticated("missing, wrong or stale X-Slack-Signature")
        if response.status == 404:
            # Signed but nothing we listen for (an event type or payload we do not use).
            return WebhookAnswer(b'{"ok":true,"ignored":true}')
        if response.status < 500:
            raise BadRequest(f"Slack request refused ({response.status})")
        # Not stored: a 5xx makes Slack deliver the event again.
        raise RuntimeError(f"slack {self.name}: handling the request failed")

    async def _before_authorize(
        self, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Deletions, ahead of bolt's self filter: it takes the deleted message's author for
        the actor, and would drop a person deleting one of our thread parents."""
        deleted = slack_events.deletion(body, self.channel, self.name)
        if deleted is None:
            await next()
            return None
        if deleted.thread_id == deleted.message_id:
            bounded_put(self._gone, deleted.message_id, "")
        await self._deliver(deleted)
        return BoltResponse(status=200, body="")

    async def _message_event(self, body: dict[str, Any]) -> None:
        me = await self._lookups.identity(QUICK)
        translated = slack_events.message(body, self.channel, self.name, me)
        if translated is None:
            return
        thread = slack_events.our_thread(body, me)
        if thread is None or translated.user.is_bot:
            await self._deliver(await self._named(translated, None))
            return
        # Only our own threads have a title naming a number; the core needs it only when the
        # store lost the thread, but cannot ask for it later: it is fetched once per thread.
        # Both look-ups at once, so that together they hold the answer up no longer than one.
        named, title = await asyncio.gather(
            self._named(translated, None), self._lookups.title(thread)
        )
        await self._deliver(replace(named, context=title))

    async def _command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        if command.get("channel_id") != self.channel:
            await ack(
                text=f"SMS are sent from <#{self.channel}>: run {command.get('command')} there."
            )
            return
        translated = slack_events.command(command, self.name)
        if translated is not None:
            await self._deliver(await self._named(translated, translated.user.name))
        await ack()

    async def _deliver(self, message: ChatMessage) -> None:
        if message.event_id is not None and message.event_id in self._handled:
            return
        assert self._on_message is not None
        await self._on_message(message)
        if message.event_id is not None:
            bounded_put(self._handled, message.event_id, "")

    async def _named(self, message: ChatMessage, fallback: str | None) -> ChatMessage:
        """The author's display name (looked up once per person) instead of their id."""
        user = message.user
        if user.is_bot or not user.id:
            return message
        name = await self._lookups.name(user.id) or fallback or user.id
        return replace(message, user=ChatUser(user.id, name, user.is_bot))
