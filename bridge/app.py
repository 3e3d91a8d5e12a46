"""Composition root: builds store, connectors, router, workers, scheduler, web; start/stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from functools import partial
from importlib import metadata
from typing import TYPE_CHECKING, Any

from bridge import logs
from bridge.config import Config, secrets_of
from bridge.delivery import Drainer, SmsWorker
from bridge.duties import Duty, LeaseKeeper, instance_id
from bridge.health import report_health
from bridge.lifecycle import Deadline
from bridge.measure import measure
from bridge.media import MediaFetcher
from bridge.metrics import Metrics
from bridge.optout import Keywords
from bridge.pacing import Pacer
from bridge.polling import Poller
from bridge.ports import ChatPlatform, ConsumesUpdates, FetchesMedia, SendsMedia, SmsGateway
from bridge.posting import ChatWorker
from bridge.replies import ChatHandler
from bridge.router import Router
from bridge.scheduler import Scheduler
from bridge.serving import EmbeddedServer, serve
from bridge.store.sql import SqlStore
from bridge.watchdog import Clock, Watchdog
from bridge.web import build_web
from connectors import CHATS, GATEWAYS

if TYPE_CHECKING:
    from bridge.store.listen import Listener

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0
MEASURE_EVERY = 15.0  # seconds between measurements of the queues (two queries) and poll lag
CHECKPOINT_EVERY = 5.0  # seconds; keeps the SQLite WAL small without checkpointing in commits
PURGE_AFTER = 7 * 86400.0
OUTBOUND_EXPIRY = 24 * 3600.0


class Bridge:
    """One running bridge. Nothing does I/O before ``start()``; ``stop()`` undoes it in reverse."""

    def __init__(
        self,
        config: Config,
        *,
        outbound_expiry: float = OUTBOUND_EXPIRY,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.clock = clock  # the watchdog's (tests move it to open a silence window)
        logs.protect(secrets_of(config))
        self.metrics = Metrics()
        self.pacer = Pacer()
        self.media = MediaFetcher()
        self.scheduler = Scheduler()
        self.outbound_expiry = outbound_expiry
        public = str(config.server.public_url).rstrip("/") if config.server.public_url else None
        self.public_url = public
        self.gateways: dict[str, SmsGateway] = {
            g.name: GATEWAYS[g.type].factory(
                g, f"{public}/webhooks/sms/{g.name}" if public else None
            )
            for g in config.gateways
        }
        self.chats: dict[str, ChatPlatform] = {
            c.name: CHATS[c.type].factory(
                c, f"{public}/webhooks/{c.type}/{c.name}" if public else None
            )
            for c in config.chats
        }
        self.store: SqlStore | None = None
        self.router: Router | None = None
        self.workers: dict[str, Drainer] = {}  # the duties' workers running here
        self.pollers: list[Poller] = []
        self.watchdogs: dict[str, Watchdog] = {}
        self.instance = instance_id()
        self.keeper: LeaseKeeper | None = None
        self._listener: Listener | None = None  # PostgreSQL only
        self._server: EmbeddedServer | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._handler: ChatHandler | None = None
        self.port: int | None = None
        self.started_at = 0.0
        self._stopped = False

    async def start(self, *, serve: bool = True) -> None:
        self.started_at = time.time()
        self.store = store = await SqlStore.open(self.config.store.async_url, self._wake)
        self.router = Router(
            self.config.routes_value(),
            store,
            self.chats,
            self.metrics,
            keywords=Keywords(self.config.opt_out),
        )
        for gateway in self.gateways.values():
            await gateway.start()
        self.keeper = keeper = LeaseKeeper(
            store.leases, self.config.store.lease_ttl, self.metrics, self.instance
        )
        for config in self.config.gateways:
            gateway = self.gateways[config.name]
            poller = Poller(gateway, config, store, self.router, self.metrics)
            watchdog = Watchdog(
                gateway, config, store, self.metrics, poller, self.config.ops, self.clock
            )
            self._gateway_duties(poller, watchdog)
        for name in self.chats:
            keeper.add(
                Duty(
                    f"chat:{name}",
                    partial(self._take_chat, name),
                    partial(self._give_up_chat, name),
                )
            )
        keeper.add(Duty("housekeeping", self._take_housekeeping, self._give_up_housekeeping))
        self.scheduler.every("checkpoint", CHECKPOINT_EVERY, store.db.checkpoint, now=False)
        self.scheduler.every("backlog", MEASURE_EVERY, self.measure)
        self.scheduler.start()
        self._handler = ChatHandler(
            self.router,
            store,
            self.gateways,
            self.chats,
            region=self.config.default_region,
            history_limit=self.config.history_limit,
            max_segments=self.config.max_segments,
            forget_thread=self._forget_thread,
            personal=frozenset(c.name for c in self.config.chats if c.personal),
            public_url=self.public_url,
        )
        for chat in self.chats.values():
            await chat.start(self._handler)
        if store.db.dialect == "sqlite":
            # The SQLite file is locked to this process: leases left by a crash are stale.
            await store.leases.forget_all()
        else:
            store.shared.elsewhere = self._elsewhere
            # Imported here: asyncpg is ~3 MB a SQLite bridge need not carry (measured).
            from bridge.store.listen import Listener

            self._listener = Listener(self.config.store.async_url, self._wake)
            self._listener.start()
        await keeper.start()  # a lone instance owns every duty once this returns
        if serve:
            await self._serve()
        # Everything built so far lives as long as the process. Freezing it takes it out of the
        # cyclic collector's full passes, which otherwise stall the loop for tens of ms
        # (measured: 30-60 ms pauses under load, straight into post latency).
        gc.collect()
        gc.freeze()
        log.info(
            "smsbridge started as %s: %d gateway(s), %d chat(s), %d of %d duties here%s",
            self.instance,
            len(self.gateways),
            len(self.chats),
            len(keeper.held),
            len(keeper.duties),
            f", listening on {self.config.server.host}:{self.port}" if serve else "",
        )

    # Duties: each runs on one instance of a deployment at a time (bridge/duties.py). --------

    def _gateway_duties(self, poller: Poller, watchdog: Watchdog) -> None:
        assert self.keeper is not None
        self.pollers.append(poller)
        self.watchdogs[poller.name] = watchdog
        name = poller.name

        async def take() -> None:
            await poller.take(self.scheduler)
            # Part of the gateway's duty: one instance watches it, so one posts each alert.
            await watchdog.take(self.scheduler)

        async def give_up(_grace: float) -> None:
            await watchdog.give_up(self.scheduler)
            await poller.give_up(self.scheduler)

        self.keeper.add(Duty(f"gateway:{name}", take, give_up))
        self.keeper.add(
            Duty(
                f"send:{name}",
                partial(self._take_sending, name),
                partial(self._stop_worker, f"send:{name}"),
            )
        )

    async def _take_sending(self, gateway: str) -> None:
        assert self.store is not None
        worker = SmsWorker(
            self.gateways[gateway], self.store, self.metrics, self.outbound_expiry, self.public_url
        )
        self.workers[f"send:{gateway}"] = worker
        worker.start()

    async def _take_chat(self, name: str) -> None:
        assert self.store is not None
        worker = ChatWorker(
            self.chats[name], self.store, self.pacer, self.metrics, self._fetch_media
        )
        self.workers[f"chat:{name}"] = worker
        worker.start()
        chat = self.chats[name]
        if isinstance(chat, ConsumesUpdates):
            await chat.start_consuming()

    async def _give_up_chat(self, name: str, grace: float) -> None:
        chat = self.chats[name]
        if isinstance(chat, ConsumesUpdates):
            await chat.stop_consuming()
        await self._stop_worker(f"chat:{name}", grace)

    async def _stop_worker(self, key: str, grace: float) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            await worker.stop(grace)

    async def _take_housekeeping(self) -> None:
        self.scheduler.every("purge", PURGE_EVERY, self._purge, now=False)

    async def _give_up_housekeeping(self, _grace: float) -> None:
        self.scheduler.remove("purge")

    def _elsewhere(self, kind: str, name: str) -> bool:
        """Whether a queue's worker may run in another instance (so a NOTIFY must wake it)."""
        return name == "*" or f"{kind}:{name}" not in self.workers

    async def _fetch_media(self, gateway: str, url: str) -> tuple[bytes, str] | None:
        found = self.gateways.get(gateway)
        if isinstance(found, FetchesMedia):
            return await found.fetch_media(url)
        return await self.media.fetch(url)

    def _forget_thread(self, chat: str, conversation_id: int) -> None:
        worker = self.workers.get(f"chat:{chat}")
        if isinstance(worker, ChatWorker):
            worker.forget(conversation_id)

    def _wake(self, kind: str, name: str) -> None:
        if kind == "forget":  # a thread deleted, whichever instance heard of it (store/threads)
            chat, _, conversation = name.rpartition(":")
            if conversation.isdigit():
                self._forget_thread(chat, int(conversation))
            return
        if name == "*":
            for key, worker in self.workers.items():
                if key.startswith(f"{kind}:"):
                    worker.wake()
            return
        found = self.workers.get(f"{kind}:{name}")
        if found is not None:
            found.wake()

    def web_app(self) -> Any:
        assert self.router is not None, "start() first"
        return build_web(
            gateways=self.gateways,
            webhook_gateways={g.name for g in self.config.gateways if g.takes_webhooks},
            gateway_types={g.name: g.type for g in self.config.gateways},
            chats=self.chats,
            chat_types={c.name: c.type for c in self.config.chats},
            router=self.router,
            metrics=self.metrics,
            health=self.health,
            max_body=self.config.server.max_body_bytes,
            public_url=self.public_url,
            # Served where some gateway sends media: only those can have files queued.
            media=(
                self.store.media
                if self.store is not None
                and any(isinstance(g, SendsMedia) for g in self.gateways.values())
                else None
            ),
            version=metadata.version("smsbridge"),
        )

    async def _serve(self) -> None:
        host, port = self.config.server.host, self.config.server.port
        self._server, self._server_task, self.port = await serve(self.web_app(), host, port)

    async def stop(self) -> None:
        """Stop taking work, let calls in flight finish and commit, then close connections.

        Queued work (posts waiting for pacing, SMS waiting for a retry) is not waited for: it
        is in the store, and the next start takes it up.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = Deadline()
        # At once, nothing new starts: no webhook, no poll, no job, no duty; pacing waits end.
        if self._server is not None:
            self._server.should_exit = True
        if self.keeper is not None:
            await self.keeper.halt()
        for worker in self.workers.values():
            worker.halt()
        stopped = await asyncio.gather(
            self.scheduler.stop(deadline.left()),
            *([self._server_task] if self._server_task is not None else []),
            *([self.keeper.stop(deadline.left())] if self.keeper is not None else []),
            return_exceptions=True,
        )
        for problem in stopped:
            if isinstance(problem, Exception):  # one part failing must not keep the rest open
                log.error("error while stopping", exc_info=problem)
        # Only now: the workers' last posts needed the chats' clients.
        for chat in self.chats.values():
            await chat.stop()
        if self._handler is not None:
            await self._handler.drain(deadline.left())
        for gateway in self.gateways.values():
            await gateway.stop()
        await self.media.close()
        if self._listener is not None:
            await self._listener.stop()
        if self.store is not None:
            await self.store.close()
        log.info("smsbridge stopped")

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Store, scheduler, duties, workers and connectors; not ok when any of them is down."""
        return await report_health(self)

    async def _purge(self) -> None:
        assert self.store is not None
        removed = await self.store.purge(PURGE_AFTER)
        if removed:
            log.info("housekeeping: forgot %d finished jobs and old event ids", removed)

    async def measure(self) -> None:
        """Queue depths and ages, poll lag: the gauges set every MEASURE_EVERY seconds."""
        assert self.store is not None
        await measure(self.store, self.metrics, self.chats, self.gateways, self.pollers)
