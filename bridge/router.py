"""Routing, both ways: an SMS to the chats and threads its routes choose, and a chat message to
its number's gateway with the mirrors that show it. Built from ``Routes``, not the config."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from bridge import storable
from bridge.batching import GroupCommit
from bridge.errors import InvalidSender
from bridge.metrics import Metrics
from bridge.models import ChatMessage, Conversation, InboundSms, WebhookEvents
from bridge.optout import Keywords
from bridge.phone import is_sender
from bridge.ports import ChatPlatform, threaded
from bridge.render import inbound_header, number_from_title, outbound_echo, split_text
from bridge.rules import Routes
from bridge.store.media import MediaFile
from bridge.store.records import Delivery, IngestItem, OutboundRequest, Stored
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# The origin_chat of /retry resends: one per failed SMS, whichever chat asked (a failure shows
# in every chat that mirrors the gateway, and each may ask).
RETRIES = "retry"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Router:
    """The one place that decides where messages go; the store keeps what it decided."""

    def __init__(
        self,
        routes: Routes,
        store: SqlStore,
        chats: dict[str, ChatPlatform],
        metrics: Metrics,
        clock: Clock = utc_now,
        keywords: Keywords | None = None,
    ) -> None:
        self.routes = routes
        self.keywords = keywords  # opt-out's stop and start; None: every SMS is a message
        self.store = store
        self.chats = chats
        self.metrics = metrics
        self.clock = clock  # a route's `hours` are read on it (tests move it)
        # Concurrent webhooks share a transaction; each is answered once it has committed.
        self.batcher: GroupCommit[IngestItem, Stored | None] = GroupCommit(store.inbound.ingest)
        self._fixed_threads = any(rule.thread is not None for rule in routes.rules)

    # Inbound ---------------------------------------------------------------------------------

    def deliveries(
        self, sms: InboundSms, names: Mapping[str, str] | None = None
    ) -> tuple[Delivery, ...]:
        """The posts each chat its routes choose gets for ``sms``, rendered once, here;
        ``names`` people gave numbers win over the gateway's alias in headers."""
        decision = self.routes.evaluate(
            sms.gateway, sms.sender, sms.text, at=self.clock(), device=sms.device, sim=sms.sim
        )
        if decision.dropped and not decision.deliveries:
            self.metrics.routed.labels(sms.gateway, decision.matched[-1].name, "dropped").inc()
        elif decision.unrouted:
            # Stored all the same (nothing is lost): a config without a catch-all says so.
            self.metrics.routed.labels(sms.gateway, "", "unrouted").inc()
            log.warning(
                "%s: SMS %s matched no route: stored, not posted",
                sms.gateway,
                sms.provider_id,
                extra={"gateway": sms.gateway, "number": sms.sender},
            )
        result = []
        for delivery in decision.deliveries:
            self.metrics.routed.labels(sms.gateway, delivery.rule.name, "posted").inc()
            platform = self.chats[delivery.chat]
            text = sms.text
            if not text.strip():
                # An MMS may be all picture: its files are the message.
                text = "" if sms.attachments else "(empty message)"
            if not threaded(platform) or delivery.thread is not None:
                # Outside the number's own thread, each post says who sent it.
                shown = (names or {}).get(sms.sender) or sms.alias
                text = f"{inbound_header(sms.sender, shown)}\n{text}".rstrip("\n")
            parts = tuple(split_text(text, platform.max_text)) if text else ()
            result.append(
                Delivery(
                    delivery.chat,
                    parts,
                    thread=delivery.thread,
                    replies=delivery.replies,
                    collapse=delivery.collapse,
                    route=delivery.rule.name,
                )
            )
        return tuple(result)

    def _item(
        self,
        sms: InboundSms,
        names: Mapping[str, str],
        event: tuple[str, str] | None = None,
    ) -> IngestItem:
        fit = storable.inbound(sms)
        opt = self.keywords.change(fit.sender, fit.text) if self.keywords else None
        return IngestItem(fit, self.deliveries(fit, names), event, opt)

    async def _names(self, messages: Sequence[InboundSms]) -> Mapping[str, str]:
        """The names of a batch's senders: one read, and none where no post has a header."""
        # Only a post with a header shows a name (a chat without threads, a route's fixed
        # thread); a chat's threads are known once it started (Telegram private chats).
        headers = self._fixed_threads or not all(threaded(c) for c in self.chats.values())
        if not headers or not messages:
            return {}
        return await self.store.contacts.names({sms.sender for sms in messages})

    async def ingest(
        self,
        gateway: str,
        events: WebhookEvents,
        cursor: tuple[str, str] | None = None,
        source: str = "webhook",
    ) -> int:
        """Store what a webhook or a poll (``source``: poll, safety, status) brought; how much
        of it was new. Raises if not stored.

        A webhook's SMS share group commits; a poll's are stored with the ``cursor`` (name,
        value) that fetched them, so a poll is never half-remembered. A webhook's bad sender
        is refused (the gateway hears why); a poll's is skipped with a warning.
        """
        polled = source != "webhook"
        event = None
        if not polled:
            for sms in events.inbound:
                if not is_sender(sms.sender):
                    raise InvalidSender(
                        "sender", f"sender {sms.sender!r} is not a phone number or sender ID"
                    )
            event_id = storable.key(events.event_id) if events.event_id else None
            event = (f"webhook:{gateway}", event_id) if event_id else None
        new = 0
        if polled:
            names = await self._names(events.inbound)
            items = [self._item(sms, names) for sms in events.inbound if self._sender_ok(sms)]
            if items or cursor is not None:
                stored = await self.store.inbound.ingest(items, cursor)
                new = self._count(gateway, source, items, stored)
        elif events.inbound:
            names = await self._names(events.inbound)
            items = [
                self._item(sms, names, event if index == 0 else None)
                for index, sms in enumerate(events.inbound)
            ]
            new = self._count(gateway, source, items, await self.batcher.submit(items))
        if events.updates:
            changed = await self.store.outbound.apply_updates(
                [storable.update(u) for u in events.updates], None if events.inbound else event
            )
            # A status for an SMS we have not matched yet is kept for later: accepted, not a
            # duplicate. Only a redelivered event is.
            new += 0 if changed is None else max(1, len(changed))
        return new

    @staticmethod
    def _sender_ok(sms: InboundSms) -> bool:
        if is_sender(sms.sender):
            return True
        log.warning(
            "%s: SMS %s skipped: its sender %r is no address",
            sms.gateway,
            sms.provider_id,
            sms.sender,
            extra={"gateway": sms.gateway, "number": sms.sender},
        )
        return False

    def _count(
        self,
        gateway: str,
        source: str,
        items: Sequence[IngestItem],
        results: Sequence[Stored | None],
    ) -> int:
        for item, stored in zip(items, results, strict=True):
            if stored is None:
                continue
            if stored.blocked:
                self.metrics.routed.labels(gateway, "", "blocked").inc()
            if item.opt is not None and stored.opted:
                event = "stop" if item.opt.opted_out else "start"
                self.metrics.opt_outs.labels(gateway, event).inc()
        new = sum(1 for r in results if r is not None)
        if new:
            self.metrics.inbound.labels(gateway, source, "new").inc(new)
        if len(results) - new:
            self.metrics.inbound.labels(gateway, source, "duplicate").inc(len(results) - new)
        return new

    # Outbound --------------------------------------------------------------------------------

    def default_gateway(self, chat: str) -> str | None:
        """The gateway `/sms` uses in ``chat``."""
        return self.routes.default_gateway(chat)

    def replies_allowed(self, chat: str, gateway: str) -> bool:
        """Whether a message in a number's thread of ``chat`` may leave as SMS: not when only
        alerts-only routes (``replies: false``) post there."""
        rules = [r for r in self.routes.for_gateway(gateway) if chat in r.chats]
        return not rules or any(r.replies for r in rules if r.action == "post")

    async def may_answer(self, msg: ChatMessage, conversation: Conversation) -> bool:
        """Not for what an alerts-only route posted, nor in a chat only such routes feed."""
        # The SMS answered: the one replied to, else the number's latest here (a plain message
        # in its thread, or a reply to a notice, answers that one too).
        allowed = await self.store.threads.replies_allowed(msg.chat, conversation.id, msg.reply_to)
        if allowed is False:
            return False
        return self.replies_allowed(msg.chat, conversation.gateway)

    async def conversation_of(self, msg: ChatMessage) -> Conversation | None:
        """The number a chat message answers: its thread's, or the bridged message it replies
        to (in a route's fixed thread, only that); None for chatter outside any."""
        platform = self.chats[msg.chat]
        if threaded(platform) and msg.thread_id is not None:
            # A route's fixed thread gathers many numbers: only a reply says which one.
            if await self.store.threads.is_named(msg.chat, msg.thread_id):
                if msg.reply_to is None:
                    return None
                return await self.store.threads.conversation_for_message(msg.chat, msg.reply_to)
            found = await self.store.threads.conversation_for_thread(msg.chat, msg.thread_id)
            if found is not None:
                return found
        if msg.reply_to is not None:
            found = await self.store.threads.conversation_for_message(msg.chat, msg.reply_to)
            if found is not None:
                return found
        # Our own thread or post, but not (yet) in the store: the post was accepted and the
        # process stopped before recording it. Its title names the number; the answer must
        # not be lost for that.
        number = number_from_title(msg.context) if msg.context else None
        gateway = self.default_gateway(msg.chat)
        if number is None or gateway is None:
            return None
        log.info(
            "chat %s: %s found by its title, not the store",
            msg.chat,
            number,
            extra={"gateway": gateway, "chat": msg.chat, "number": number},
        )
        return await self.store.threads.conversation(gateway, number)

    async def send(
        self,
        msg: ChatMessage,
        gateway: str,
        number: str,
        text: str,
        *,
        echo: bool,
        retry_of: int | None = None,
        media: tuple[MediaFile, ...] = (),
    ) -> int | None:
        """Queue ``text`` to ``number`` through ``gateway``; the outbox id, or None if the chat
        message was queued before. The number's thread in every other chat that mirrors the
        gateway shows it too, and who sent it from where (``echo``: this chat's as well).

        ``retry_of`` (/retry) names the failed SMS this one resends: it is the origin, once
        per failed SMS whatever the command's message and chat, and this chat shows it as an
        echo."""
        platform = self.chats[msg.chat]
        # Mirrors show what went with it by name: the files themselves stay in their chat.
        shown_text = "\n".join([text, *(f"📎 {f.name or f.content_type}" for f in media)]).strip()
        echoes: list[tuple[str, str]] = []
        if retry_of is not None:
            to = None if threaded(platform) else number
            shown = outbound_echo(f"{msg.user.name} (retry)", text, platform.max_text, to=to)
            echoes.append((msg.chat, shown))
        elif echo and threaded(platform):
            echoes.append((msg.chat, outbound_echo(msg.user.name, shown_text, platform.max_text)))
        for other in self.routes.mirrors_for(gateway):
            if other != msg.chat:
                mirror = self.chats[other]
                shown = outbound_echo(
                    f"{msg.user.name} via {msg.chat}",
                    shown_text,
                    mirror.max_text,
                    to=None if threaded(mirror) else number,
                )
                echoes.append((other, shown))
        request = OutboundRequest(
            gateway=gateway,
            number=number,
            text=text,
            origin_chat=msg.chat if retry_of is None else RETRIES,
            origin_message_id=msg.message_id if retry_of is None else f"retry:{retry_of}",
            origin_thread_id=msg.thread_id,
            author=msg.user.name,
            # What only its author saw shows no status; nor does a retry's origin, which is
            # no chat message (its echo shows it).
            mirrored=not msg.private and retry_of is None,
            purpose="reply" if retry_of is None else "retry",
            media=media,
        )
        # The platform's delivery id (Slack's event_id, Telegram's update_id) is recorded in
        # the SMS's own transaction: a redelivery is dropped by it as well as by the chat
        # message's id, and recording it costs no commit of its own on the reply path.
        event = (f"chat:{msg.chat}", msg.event_id) if msg.event_id else None
        return await self.store.outbound.enqueue(request, tuple(echoes), event)
