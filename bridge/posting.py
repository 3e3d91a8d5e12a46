"""The worker that posts into one chat: threads, pacing, retry_after, status reactions."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable

from bridge import segments
from bridge.batching import GroupCommit
from bridge.delivery import IDLE_POLL, Worker, backoff
from bridge.errors import (
    RateLimited,
    Retryable,
    Terminal,
    ThreadClosed,
    ThreadGone,
    Unavailable,
)
from bridge.lifecycle import STOP_GRACE, Deadline, settle
from bridge.logfmt import about
from bridge.metrics import Metrics
from bridge.models import Status
from bridge.pacing import Interrupted, Pacer
from bridge.placing import Placer, Send
from bridge.ports import (
    CallKind,
    ChatPlatform,
    EditsMessages,
    PostsFiles,
    PostsPrivately,
    ShowsStatus,
)
from bridge.render import attachment_line, status_notice
from bridge.store.records import ChatJob, JobKind, PostDone
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

# (gateway, url) -> (content, content type), or None when that gateway hands out plain links.
FetchMedia = Callable[[str, str], Awaitable[tuple[bytes, str] | None]]

_GONE_OUT = (Status.SENT, Status.DELIVERED)
PREFETCH = 64
CONCURRENCY = 8  # conversations posted side by side in one chat; all share its pacing


def _group(job: ChatJob) -> object:
    """What a job must stay in order with: a route's fixed thread (opened once, whoever's SMS
    comes first), its conversation, or the thread it replies in."""
    if job.fixed_thread is not None:
        return ("fixed", job.fixed_thread)
    if job.conversation_id is not None:
        return job.conversation_id
    return ("thread", job.thread_id)


def shown(status: Status) -> Status:
    """Pending (in our outbox) and queued (at the gateway) look the same to people."""
    return Status.QUEUED if status is Status.PENDING else status


class ChatWorker(Worker):
    """Drains one chat's jobs so that every thread reads in the order things happened.

    The oldest pending jobs are grouped by conversation; up to ``CONCURRENCY`` groups run side
    by side (their network waits overlap), each strictly in order, and a conversation never
    has two groups at once. That makes a group the per-conversation lock around "find or open
    the thread": two SMS from a new number are posted one after the other, and the second
    finds the thread the first opened. A freed slot is refilled at once (no rounds to wait
    for). The pacer, shared by all groups, keeps the chat within the platform's limits.
    """

    def __init__(
        self,
        platform: ChatPlatform,
        store: SqlStore,
        pacer: Pacer,
        metrics: Metrics,
        fetch_media: FetchMedia | None = None,
    ) -> None:
        super().__init__()
        self.fetch_media = fetch_media
        self.platform = platform
        self.store = store
        self.pacer = pacer
        self.metrics = metrics
        self.name = f"chat:{platform.name}"
        self.placer = Placer(platform, store, self._pace)
        self._running: dict[object, asyncio.Task[bool]] = {}
        # Posts finishing together (one per conversation group) are recorded in one commit.
        self._record: GroupCommit[PostDone, None] = GroupCommit(store.jobs.complete_posts)
        self._left_over = False  # the last read found work it could not start yet
        self._halted = asyncio.Event()  # ends pacing waits when the bridge stops
        self._paced = metrics.pacing_wait.labels(platform.name)  # per post: looked up once

    async def step(self) -> float | None:
        # Forget finished groups only here, before reading: a group finishing while the read
        # is under way leaves its jobs looking pending in that read's result, and must still
        # count as running for it.
        for key in [k for k, task in self._running.items() if task.done()]:
            del self._running[key]
        jobs = await self.store.jobs.pending(self.platform.name, PREFETCH)
        now = time.time()
        groups: dict[object, list[ChatJob]] = {}
        waiting: set[object] = set()
        next_due = now + IDLE_POLL
        for job in jobs:
            key = _group(job)
            if key in self._running or key in waiting:
                continue  # an earlier job of this conversation is running or waiting
            if job.next_attempt_at > now:
                waiting.add(key)
                next_due = min(next_due, job.next_attempt_at)
                continue
            groups.setdefault(key, []).append(job)
        started = 0
        for key, group in groups.items():
            if len(self._running) >= CONCURRENCY:
                break
            task = asyncio.create_task(self._run_group(group), name=f"{self.name}:{key}")
            self._running[key] = task
            task.add_done_callback(self._finished)
            started += len(group)
        # Jobs of running conversations, or beyond the free slots, wait for a group to finish;
        # new work wakes us anyway, so otherwise a finishing group need not.
        self._left_over = started < len(jobs) - sum(1 for job in jobs if _group(job) in waiting)
        if self._left_over and any(task.done() for task in self._running.values()):
            # A group finished while we were reading, before _left_over said to wake us: its
            # conversation's next jobs would otherwise wait for the idle poll.
            return 0.0
        # A finished group wakes us: sleep until then, or until a deferred job is due.
        return max(0.0, next_due - now)

    def _finished(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: group failed", self.name, exc_info=task.exception())
        if self._left_over or task.cancelled() or task.exception() or not task.result():
            self.wake()

    def halt(self) -> None:
        super().halt()
        self._halted.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        deadline = Deadline(grace)
        await super().stop(grace)
        # Posts in flight finish and are recorded: a stop never leaves one ambiguous. Groups
        # waiting for pacing have ended already, their jobs untouched.
        await settle(list(self._running.values()), deadline.left(), self.name)
        await self.placer.save_opened()

    async def _run_group(self, jobs: list[ChatJob]) -> bool:
        """Run a conversation's jobs in order; False if one has to wait (or we stop)."""
        try:
            for job in jobs:
                if self._stopping or not await self._attempt(job):
                    return False  # it waits at the head; the rest of its conversation too
        except Interrupted:
            return False  # stopping while waiting for pacing: the job waits in the store
        return True

    async def _attempt(self, job: ChatJob) -> bool:
        """Run one job; False when it has to wait (it stays at the head of the queue)."""
        # Each group runs in its own task, so this names the job in every log line until the
        # next job of the group (ours and the chat library's) and nowhere else.
        about(chat=self.platform.name, number=job.number, outbox_id=job.outbox_id)
        try:
            await self._run(job)
        except Unavailable as exc:
            self.down = exc.reason
            self.last_error = exc.reason
            await self.store.jobs.defer(job.id, exc.retry_after, exc.reason)
            self._count(job, "unavailable", exc)
            log.error("%s: chat unavailable, work waits in the store: %s", self.name, exc.reason)
            return False
        except RateLimited as exc:
            self.pacer.hold(exc.key or self.platform.hold_key, exc.retry_after)
            await self.store.jobs.defer(job.id, exc.retry_after, exc.reason)
            self._count(job, "rate_limited", exc)
            return False
        except Retryable as exc:
            self.last_error = exc.reason
            await self.store.jobs.defer(job.id, backoff(job.attempts), exc.reason)
            self._count(job, "retry", exc)
            log.warning("%s: job %s will be retried: %s", self.name, job.id, exc.reason)
            return False
        except (Terminal, ThreadGone, ThreadClosed) as exc:
            await self.store.jobs.fail(job.id, str(exc))
            self._count(job, "failed", exc)
            log.error("%s: job %s (%s) failed for good: %s", self.name, job.id, job.kind, exc)
        else:
            self.last_error = None
            self.down = None
            self._count(job, "ok")
        return True

    def _count(self, job: ChatJob, outcome: str, exc: Exception | None = None) -> None:
        self.metrics.chat_posts.labels(self.platform.name, job.kind.value, outcome).inc()
        if exc is not None:
            self.metrics.error("chat", self.platform.name, exc)

    async def _run(self, job: ChatJob) -> None:
        if job.kind is JobKind.STATUS:
            await self._status(job)
            return
        if job.kind in (JobKind.RENAME, JobKind.CLOSE, JobKind.REOPEN):
            # Nothing posted: the thread is kept, whether or not there was one to change.
            thread = await self.placer.keep(job)
            await self._record.submit([PostDone(job, (), thread)])
            return
        if job.kind is JobKind.EDIT:
            await self._edit(job)
            return
        text = job.text or ""
        if job.private_to is not None and isinstance(self.platform, PostsPrivately):
            # Only its addressee sees it, and nobody can reply to it: nothing to map.
            await self._pace(CallKind.LIGHT)
            await self.platform.post_private(job.thread_id, job.private_to, text)
            await self._record.submit([PostDone(job, (), job.thread_id)])
            return
        if job.conversation_id is None and job.fixed_thread is None:
            message_id, _ = await self.placer.post_in(
                job.thread_id, job, lambda where: self.platform.post(where, text, job.message_id)
            )
            await self._record.submit([PostDone(job, (message_id,), job.thread_id)])
            return
        thread = await self.placer.thread(job)
        if job.kind is JobKind.FILE:
            send = await self._file_sender(job)
        else:

            def send(where: str | None) -> Awaitable[str]:
                return self.placer.post(job, where, text, job.message_id)

        message_id, thread = await self.placer.post_in(thread, job, send)
        await self._record.submit(
            [PostDone(job, (message_id,), thread, self.placer.opened_for(job))]
        )
        self.placer.saved(job)
        if job.kind is JobKind.SMS:
            self.metrics.post_latency.labels(self.platform.name).observe(
                max(0.0, time.time() - job.next_attempt_at)
            )

    async def _edit(self, job: ChatJob) -> None:
        """The same SMS again within a route's ``collapse``: its first post shows the count."""
        assert job.inbound_id is not None
        message_id = await self.store.jobs.first_message(
            self.platform.name, job.inbound_id, self.placer.known(job)
        )
        text = job.text or ""
        if message_id is not None and isinstance(self.platform, EditsMessages):
            await self._pace(CallKind.MESSAGE)
            try:
                await self.platform.edit_text(message_id, text)
                await self._record.submit([PostDone(job, (), None)])
                return
            except Terminal as exc:  # deleted by a human, or too old to edit: post anew
                log.info("%s: cannot edit %s: %s", self.name, message_id, exc.reason)
        thread = await self.placer.thread(job)
        posted, thread = await self.placer.post_in(
            thread, job, lambda where: self.placer.post(job, where, text, None)
        )
        await self._done(job, (posted,), thread)

    async def _done(self, job: ChatJob, message_ids: tuple[str, ...], thread: str | None) -> None:
        """Record a post (and the number's thread it opened) in the next group commit."""
        await self._record.submit([PostDone(job, message_ids, thread, self.placer.opened_for(job))])
        self.placer.saved(job)

    async def _pace(self, call: CallKind) -> None:
        waited = await self.pacer.acquire(self.platform.limits(call), self._halted)
        if waited:
            self._paced.inc(waited)

    def forget(self, conversation_id: int) -> None:
        """The conversation's thread was deleted: its next post opens a new one."""
        self.placer.forget(conversation_id)

    async def _file_sender(self, job: ChatJob) -> Send:
        """How to post an attachment: the file itself, or a line about it if we cannot."""
        assert job.attachment_id is not None
        gateway, file = await self.store.inbound.attachment(job.attachment_id)
        data, content_type = file.data, file.content_type
        problem = None
        if data is None and file.url and self.fetch_media is not None:
            try:
                fetched = await self.fetch_media(gateway, file.url)
            except Terminal as exc:
                fetched, problem = None, exc.reason  # gone at the gateway: say so, keep going
            if fetched is not None:
                data = fetched[0]
                # A generic type from the server says less than what the gateway told us.
                if fetched[1] and fetched[1].split(";")[0].strip() != "application/octet-stream":
                    content_type = fetched[1]
        platform = self.platform
        if data is None or not isinstance(platform, PostsFiles):
            line = attachment_line(file.name, content_type, None if problem else file.url, problem)
            return lambda where: self.platform.post(where, line, None)
        content = data
        extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        name = file.name or f"attachment-{job.attachment_id}{extension}"
        return lambda where: platform.post_file(where, name, content_type, content, None)

    async def _status(self, job: ChatJob) -> None:
        assert job.outbox_id is not None
        assert job.message_id is not None
        sms = await self.store.outbound.by_id(job.outbox_id)
        target = shown(sms.status)
        current, thread = await self.store.jobs.shown_status(self.platform.name, job.message_id)
        if current is target:
            await self.store.jobs.complete_status(job, None)
            return
        if isinstance(self.platform, ShowsStatus):
            await self._pace(CallKind.STATUS)
            try:
                await self.platform.show_status(job.message_id, target)
            except Terminal as exc:
                # The message was deleted, or reactions are off: the notice below still tells.
                log.info("%s: cannot show status on %s: %s", self.name, job.message_id, exc.reason)
        notice = None
        if target is Status.FAILED:
            notice = status_notice(target, sms.reason)
        elif target in _GONE_OUT and current not in _GONE_OUT:
            # Once, when it first shows as gone out: what a long reply cost.
            found = segments.count(sms.text)
            notice = segments.sent_notice(found) if found.parts > 1 else None
        if notice is not None:
            text = notice
            await self.placer.post_in(
                thread, job, lambda where: self.platform.post(where, text, job.message_id)
            )
        await self.store.jobs.complete_status(job, target)
