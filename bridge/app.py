"""Composition root: builds store, connectors, router, workers, scheduler, web; start/stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
from importlib import metadata
from typing import Any

import uvicorn

from bridge import logs
from bridge.config import Config, secrets_of
from bridge.delivery import Drainer, SmsWorker
from bridge.lifecycle import Deadline
from bridge.media import MediaFetcher
from bridge.metrics import Metrics
from bridge.pacing import Pacer
from bridge.polling import Poller
from bridge.ports import ChatPlatform, FetchesMedia, SmsGateway
from bridge.posting import ChatWorker
from bridge.replies import ChatHandler
from bridge.router import Router
from bridge.scheduler import Scheduler
from bridge.store.sql import SqlStore
from bridge.web import build_web
from connectors import CHATS, GATEWAYS

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0
CHECKPOINT_EVERY = 5.0  # seconds; keeps the SQLite WAL small without checkpointing in commits
PURGE_AFTER = 7 * 86400.0
OUTBOUND_EXPIRY = 24 * 3600.0


class Bridge:
    """One running bridge. Nothing does I/O before ``start()``; ``stop()`` undoes it in reverse."""

    def __init__(self, config: Config, *, outbound_expiry: float = OUTBOUND_EXPIRY) -> None:
        self.config = config
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
        self.workers: dict[str, Drainer] = {}
        self.pollers: list[Poller] = []
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._handler: ChatHandler | None = None
        self.port: int | None = None
        self.started_at = 0.0
        self._stopped = False

    async def start(self, *, serve: bool = True) -> None:
        self.started_at = time.time()
        self.store = store = await SqlStore.open(self.config.store.async_url, self._wake)
        self.router = router = Router(self.config, store, self.chats, self.metrics)
        for gateway in self.gateways.values():
            await gateway.start()
        for name, gateway in self.gateways.items():
            self.workers[f"gateway:{name}"] = SmsWorker(
                gateway, store, self.metrics, self.outbound_expiry
            )
        for name, chat in self.chats.items():
            self.workers[f"chat:{name}"] = ChatWorker(
                chat, store, self.pacer, self.metrics, self._fetch_media
            )
        for worker in self.workers.values():
            worker.start()
        for config in self.config.gateways:
            poller = Poller(self.gateways[config.name], config, store, router, self.metrics)
            self.pollers.append(poller)
            poller.schedule(self.scheduler)
        self.scheduler.every("purge", PURGE_EVERY, self._purge, now=False)
        self.scheduler.every("checkpoint", CHECKPOINT_EVERY, store.db.checkpoint, now=False)
        self.scheduler.every("backlog", 15.0, self._measure_backlog)
        self.scheduler.start()
        self._handler = ChatHandler(
            self.config, store, self.gateways, self.chats, self._forget_thread
        )
        for chat in self.chats.values():
            await chat.start(self._handler)
        if serve:
            await self._serve()
        # Everything built so far lives as long as the process. Freezing it takes it out of the
        # cyclic collector's full passes, which otherwise stall the loop for tens of ms
        # (measured: 30-60 ms pauses under load, straight into post latency).
        gc.collect()
        gc.freeze()
        log.info(
            "smsbridge started: %d gateway(s), %d chat(s)%s",
            len(self.gateways),
            len(self.chats),
            f", listening on {self.config.server.host}:{self.port}" if serve else "",
        )

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
            version=metadata.version("smsbridge"),
        )

    async def _serve(self) -> None:
        server_config = self.config.server
        sock = socket.socket(
            socket.AF_INET6 if ":" in server_config.host else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((server_config.host, server_config.port))
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        uv_config = uvicorn.Config(
            self.web_app(),
            log_level="warning",
            access_log=False,  # paths carry webhook tokens
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        self._server = _EmbeddedServer(uv_config)
        self._server_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop taking work, let calls in flight finish and commit, then close connections.

        Queued work (posts waiting for pacing, SMS waiting for a retry) is not waited for: it
        is in the store, and the next start takes it up.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = Deadline()
        # At once, nothing new starts: no webhook, no poll, no job; pacing waits end.
        if self._server is not None:
            self._server.should_exit = True
        for worker in self.workers.values():
            worker.halt()
        stopped = await asyncio.gather(
            self.scheduler.stop(deadline.left()),
            *(worker.stop(deadline.left()) for worker in self.workers.values()),
            *([self._server_task] if self._server_task is not None else []),
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
        if self.store is not None:
            await self.store.close()
        log.info("smsbridge stopped")

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Store, scheduler, workers and connectors; not ok when any of them is down."""
        report: dict[str, Any] = {"uptime": round(time.time() - self.started_at, 1)}
        ok = True
        try:
            assert self.store is not None
            await asyncio.wait_for(self.store.db.ping(), timeout=5)
            backlog = await self.store.backlog()
            report["store"] = {"state": "ok", "backlog": backlog}
        except Exception as exc:
            report["store"] = {"state": "down", "error": type(exc).__name__}
            ok = False
        report["scheduler"] = {"state": "ok" if self.scheduler.running else "down"}
        ok = ok and self.scheduler.running
        workers = {}
        for name, worker in self.workers.items():
            up = worker.alive and worker.down is None
            workers[name] = {"state": "ok" if up else "down", "last_error": worker.last_error}
            ok = ok and up
        report["workers"] = workers
        chats = {name: chat.health() for name, chat in self.chats.items()}
        report["chats"] = chats
        ok = ok and all(c.get("state") == "ok" for c in chats.values())
        gateways = {p.name: p.health() for p in self.pollers}
        report["gateways"] = gateways
        ok = ok and all(g.get("state") != "down" for g in gateways.values())
        report["status"] = "ok" if ok else "down"
        return ok, report

    async def _purge(self) -> None:
        assert self.store is not None
        removed = await self.store.purge(PURGE_AFTER)
        if removed:
            log.info("housekeeping: forgot %d finished jobs and old event ids", removed)

    async def _measure_backlog(self) -> None:
        assert self.store is not None
        backlog = await self.store.backlog()
        for queue, counts in backlog.items():
            names = set(self.chats) if queue == "chat_jobs" else set(self.gateways)
            for name in names:
                self.metrics.backlog.labels(queue, name).set(counts.get(name, 0))


class _EmbeddedServer(uvicorn.Server):
    # The bridge's own signal handling decides when to stop, not uvicorn's.
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield
