"""The worker that posts into one chat: threads, pacing, retry_after, status reactions."""

from __future__ import annotations

import logging
import time

from bridge.delivery import IDLE_POLL, Worker, backoff
from bridge.errors import (
    RateLimited,
    Retryable,
    Terminal,
    ThreadClosed,
    ThreadGone,
    Unavailable,
)
from bridge.metrics import Metrics
from bridge.models import Status
from bridge.pacing import Pacer
from bridge.ports import ChatPlatform
from bridge.render import status_notice, thread_title
from bridge.store.records import ChatJob, JobKind
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

PREFETCH = 32


def shown(status: Status) -> Status:
    """Pending (in our outbox) and queued (at the gateway) look the same to people."""
    return Status.QUEUED if status is Status.PENDING else status


class ChatWorker(Worker):
    """Drains one chat's jobs in order, so every thread reads in the order things happened.

    Being the only writer to its chat, it is also the per-conversation lock around "find or
    open the thread": two SMS from a new number are posted one after the other, and the
    second finds the thread the first opened.
    """

    def __init__(
        self, platform: ChatPlatform, store: SqlStore, pacer: Pacer, metrics: Metrics
    ) -> None:
        super().__init__()
        self.platform = platform
        self.store = store
        self.pacer = pacer
        self.metrics = metrics
        self.name = f"chat:{platform.name}"
        # This worker is the only one that opens threads in its chat, so what it has seen of
        # the thread mapping is always current; it saves a read per post.
        self._threads: dict[int, str] = {}
        self._ahead: list[ChatJob] = []

    async def step(self) -> float | None:
        if not self._ahead:
            # Fetched a few at a time; any failure drops the rest so order is kept.
            self._ahead = await self.store.next_chat_jobs(self.platform.name, PREFETCH)
            if not self._ahead:
                return IDLE_POLL
        job = self._ahead[0]
        wait = job.next_attempt_at - time.time()
        if wait > 0:
            self._ahead = []
            return wait
        self._ahead.pop(0)
        if not await self._attempt(job):
            self._ahead = []
        return None

    async def _attempt(self, job: ChatJob) -> bool:
        """Run one job; False when it has to wait (it stays at the head of the queue)."""
        try:
            await self._run(job)
        except Unavailable as exc:
            self.down = exc.reason
            self.last_error = exc.reason
            await self.store.defer_job(job.id, exc.retry_after, exc.reason)
            self._count(job, "unavailable")
            log.error("%s: chat unavailable, work waits in the store: %s", self.name, exc.reason)
            return False
        except RateLimited as exc:
            self.pacer.hold(self.platform.hold_key, exc.retry_after)
            await self.store.defer_job(job.id, exc.retry_after, exc.reason)
            self._count(job, "rate_limited")
            return False
        except Retryable as exc:
            self.last_error = exc.reason
            await self.store.defer_job(job.id, backoff(job.attempts), exc.reason)
            self._count(job, "retry")
            log.warning("%s: job %s will be retried: %s", self.name, job.id, exc.reason)
            return False
        except (Terminal, ThreadGone, ThreadClosed) as exc:
            await self.store.fail_job(job.id, str(exc))
            self._count(job, "failed")
            log.error("%s: job %s (%s) failed for good: %s", self.name, job.id, job.kind, exc)
        except BaseException:
            self._ahead = []
            raise
        else:
            self.last_error = None
            self.down = None
            self._count(job, "ok")
        return True

    def _count(self, job: ChatJob, outcome: str) -> None:
        self.metrics.chat_posts.labels(self.platform.name, job.kind.value, outcome).inc()

    async def _run(self, job: ChatJob) -> None:
        if job.kind is JobKind.STATUS:
            await self._status(job)
            return
        text = job.text or ""
        if job.conversation_id is None:
            await self._pace(message=True)
            message_id = await self.platform.post(job.thread_id, text, job.message_id)
            await self.store.complete_post(job, [message_id], job.thread_id)
            return
        thread = await self._thread(job.conversation_id)
        message_id, thread = await self._post_in_thread(job.conversation_id, thread, text, job)
        await self.store.complete_post(job, [message_id], thread)
        if job.kind is JobKind.SMS:
            self.metrics.post_latency.labels(self.platform.name).observe(
                max(0.0, time.time() - job.next_attempt_at)
            )

    async def _pace(self, *, message: bool) -> None:
        await self.pacer.acquire(self.platform.limits(message))

    async def _thread(self, conversation_id: int) -> str | None:
        if not self.platform.threaded:
            return None
        thread = self._threads.get(conversation_id)
        if thread is None:
            thread = await self.store.thread_of(conversation_id, self.platform.name)
        if thread is None:
            thread = await self._open_thread(conversation_id)
        self._threads[conversation_id] = thread
        return thread

    async def _open_thread(self, conversation_id: int) -> str:
        conversation = await self.store.conversation_by_id(conversation_id)
        await self._pace(message=True)  # opening a topic posts a service message
        thread = await self.platform.open_thread(
            thread_title(conversation.number, conversation.alias)
        )
        await self.store.set_thread(conversation_id, self.platform.name, thread)
        self._threads[conversation_id] = thread
        log.info("%s: opened thread %s for %s", self.name, thread, conversation.number)
        return thread

    async def _post_in_thread(
        self, conversation_id: int, thread: str | None, text: str, job: ChatJob
    ) -> tuple[str, str | None]:
        """Post; a thread deleted by a human is replaced, a closed one reopened, once each."""
        await self._pace(message=True)
        try:
            return await self.platform.post(thread, text, job.message_id), thread
        except ThreadGone:
            if thread is None:
                raise
            log.warning("%s: thread %s is gone, opening a new one", self.name, thread)
            thread = await self._open_thread(conversation_id)
        except ThreadClosed:
            if thread is None:
                raise
            log.info("%s: thread %s was closed, reopening it", self.name, thread)
            await self._pace(message=False)
            await self.platform.reopen_thread(thread)
        await self._pace(message=True)
        return await self.platform.post(thread, text, job.message_id), thread

    async def _status(self, job: ChatJob) -> None:
        assert job.outbox_id is not None
        assert job.message_id is not None
        sms = await self.store.outbox_by_id(job.outbox_id)
        target = shown(sms.status)
        current, thread = await self.store.shown_status(self.platform.name, job.message_id)
        if current is target:
            await self.store.complete_status(job, None)
            return
        await self._pace(message=False)
        try:
            await self.platform.show_status(job.message_id, target)
        except Terminal as exc:
            # The message was deleted, or reactions are off: the notice below still tells.
            log.info("%s: cannot show status on %s: %s", self.name, job.message_id, exc.reason)
        if target is Status.FAILED:
            await self._pace(message=True)
            await self.platform.post(thread, status_notice(target, sms.reason), job.message_id)
        await self.store.complete_status(job, target)
