"""Where a chat's posts go: the number's own thread, or a route's fixed thread; each opened once,
renamed, closed and reopened here.

The chat's worker is the only one that opens threads in its chat (one instance of a
deployment owns its posting), so what it has seen of the mapping is always current, and
keeping it here saves a read per post.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bridge.errors import DeliveryError, ThreadClosed, ThreadError, ThreadGone, ThreadsOff
from bridge.pacing import Interrupted
from bridge.phone import pretty
from bridge.ports import CallKind, ChatPlatform, ClosesThreads, ManagesThreads
from bridge.render import inbound_header, thread_title, utf16_len
from bridge.store.records import ChatJob, JobKind
from bridge.store.sql import SqlStore

log = logging.getLogger(__name__)

_HEADED = (JobKind.SMS, JobKind.EDIT)  # an SMS's text (an edit shows it again, counted)

Pace = Callable[[CallKind], Awaitable[None]]  # waits for a call's turn (opening a topic posts)
Send = Callable[[str | None], Awaitable[str]]  # posts into a thread (None: the chat itself)


def _opens(job: ChatJob) -> bool:
    """Whether a job whose thread is gone opens it anew: a post in a number's own thread or
    a route's, not a notice beside a message nor a status's notice on a deleted post."""
    if job.kind is JobKind.STATUS:
        return False
    return job.conversation_id is not None or job.fixed_thread is not None


class Placer:
    def __init__(self, platform: ChatPlatform, store: SqlStore, pace: Pace) -> None:
        self.platform = platform
        # None: a chat without threads, where every post stands alone with its header.
        self.threads = platform if isinstance(platform, ManagesThreads) else None
        self.store = store
        self.pace = pace
        self.name = f"chat:{platform.name}"
        self._threads: dict[int, str] = {}  # conversation id -> its thread
        self._named: dict[str, str] = {}  # a fixed thread's title -> its thread
        self._unsaved: set[int] = set()  # opened, recorded with the post that follows

    def known(self, job: ChatJob) -> str | None:
        """The thread the job posts in, if it exists already."""
        if self.threads is None or not self.threads.threaded:
            return None
        if job.fixed_thread is not None:
            return self._named.get(job.fixed_thread) or job.known_thread
        if job.conversation_id is None:
            return None
        return self._threads.get(job.conversation_id) or job.known_thread

    async def thread(self, job: ChatJob) -> str | None:
        """The thread the job posts in, opened first if it has none yet."""
        if self.threads is None or not self.threads.threaded:
            return None
        if job.fixed_thread is None and job.conversation_id is None:
            return None
        thread = self.known(job)
        if thread is None:
            return await self.open(job)
        self._remember(job, thread)
        return thread

    def _remember(self, job: ChatJob, thread: str) -> None:
        if job.fixed_thread is not None:
            self._named[job.fixed_thread] = thread
        elif job.conversation_id is not None:
            self._threads[job.conversation_id] = thread

    async def open(self, job: ChatJob) -> str | None:
        """Open the job's thread (again, if a human deleted the old one); None when the chat
        refuses threads from now on, and the job posts into the chat itself."""
        try:
            return await self._open(job)
        except ThreadsOff as exc:
            log.warning("%s: no threads here now, posting with headers: %s", self.name, exc)
            return None

    async def _open(self, job: ChatJob) -> str:
        assert self.threads is not None, "only a chat with threads has one to open"
        if job.fixed_thread is not None:
            await self.pace(CallKind.MESSAGE)
            thread = await self.threads.open_thread(job.fixed_thread)
            # Recorded at once: posts of many numbers, in any order, will use it.
            await self.store.threads.record_named(self.platform.name, job.fixed_thread, thread)
            log.info("%s: opened thread %s (%s)", self.name, thread, job.fixed_thread)
        else:
            assert job.conversation_id is not None
            number, alias = await self.who(job)
            await self.pace(CallKind.MESSAGE)
            thread = await self.threads.open_thread(thread_title(number, alias))
            # Recorded with the post that follows (one commit); until then it lives here, so a
            # retried post reuses it instead of opening another.
            self._unsaved.add(job.conversation_id)
            log.info("%s: opened thread %s for %s", self.name, thread, number)
        self._remember(job, thread)
        return thread

    async def post_in(self, thread: str | None, job: ChatJob, send: Send) -> tuple[str, str | None]:
        """Post with ``send``; a number's thread deleted by a human is replaced, a closed one
        reopened, once each. A thread closed by /close is closed again after the post: only the
        number's SMS reopens it (its intake marked it open), not a notice, echo or status."""
        await self.pace(CallKind.MESSAGE)
        closes: ClosesThreads | None = None
        try:
            return await send(thread), thread
        except ThreadGone:
            if thread is None or not _opens(job):
                raise
            log.warning("%s: thread %s is gone, opening a new one", self.name, thread)
            thread = await self.open(job)
        except ThreadClosed:
            if thread is None or not isinstance(self.platform, ClosesThreads):
                raise
            log.info("%s: thread %s was closed, reopening it", self.name, thread)
            # Asked before posting: once posted, nothing may fail the job (it would post twice).
            if await self.store.threads.is_closed(self.platform.name, thread):
                closes = self.platform
            await self.pace(CallKind.LIGHT)
            await self.platform.reopen_thread(thread)
        await self.pace(CallKind.MESSAGE)
        posted = await send(thread)
        if closes is not None and thread is not None:
            await self._close_again(closes, thread)
        return posted, thread

    async def _close_again(self, platform: ClosesThreads, thread: str) -> None:
        """After a post: closed again, as /close left it. A refusal (or a stop while waiting
        for its turn) leaves it open: the post is made, and the job must not be retried."""
        try:
            await self.pace(CallKind.MESSAGE)  # a closed topic shows a service message
            await platform.close_thread(thread)
        except (DeliveryError, ThreadError, Interrupted) as exc:
            log.warning("%s: thread %s left open after a post: %r", self.name, thread, exc)

    async def post(self, job: ChatJob, where: str | None, text: str, reply_to: str | None) -> str:
        """Post a job's text; an SMS posted outside its number's thread says whose it is. It
        was rendered for the thread while the chat had threads; then the chat refused them
        (``ThreadsOff``). The message id."""
        header = await self._header(job, where, text)
        if header is None:
            return await self.platform.post(where, text, reply_to)
        headed = f"{header}\n{text}"
        if utf16_len(headed) <= self.platform.max_text:
            return await self.platform.post(where, headed, reply_to)
        # A part as long as the chat takes: its header goes first, the SMS replies to it.
        first = await self.platform.post(where, header, reply_to)
        await self.pace(CallKind.MESSAGE)
        return await self.platform.post(where, text, first)

    async def _header(self, job: ChatJob, where: str | None, text: str) -> str | None:
        if where is not None or job.kind not in _HEADED or job.conversation_id is None:
            return None
        if job.fixed_thread is not None:
            return None  # a route's thread gathers many numbers: rendered with its header
        number, alias = await self.who(job)
        first = text.split("\n", 1)[0]
        if first == inbound_header(number, None) or (
            first.startswith("📩 ") and first.endswith(f"({pretty(number)})")
        ):
            return None  # rendered with its header (under whichever name it had then)
        return inbound_header(number, alias)

    async def keep(self, job: ChatJob) -> str | None:
        """A rename, close or reopen job: done to the number's thread where the platform can;
        with no thread, or on a platform that cannot, there is nothing to do. The thread."""
        thread = self.known(job)
        if thread is None:
            return None
        try:
            if job.kind is JobKind.RENAME and self.threads is not None:
                # The title the alias calls for now: the newest alias wins.
                number, alias = await self.who(job)
                # A renamed, closed or reopened topic shows a service message.
                await self.pace(CallKind.MESSAGE)
                await self.threads.rename_thread(thread, thread_title(number, alias))
            elif job.kind in (JobKind.CLOSE, JobKind.REOPEN) and isinstance(
                self.platform, ClosesThreads
            ):
                await self.pace(CallKind.MESSAGE)
                if job.kind is JobKind.CLOSE:
                    await self.platform.close_thread(thread)
                else:
                    await self.platform.reopen_thread(thread)
        except ThreadGone:
            # Deleted by a human: the next post opens a new thread, titled anew and open.
            log.info("%s: thread %s is gone, nothing to %s", self.name, thread, job.kind)
        return thread

    def opened_for(self, job: ChatJob) -> bool:
        """Whether the job's post must record the number's thread it opened."""
        return job.fixed_thread is None and job.conversation_id in self._unsaved

    def saved(self, job: ChatJob) -> None:
        if job.fixed_thread is None and job.conversation_id is not None:
            self._unsaved.discard(job.conversation_id)

    async def who(self, job: ChatJob) -> tuple[str, str | None]:
        """The job's number and the name its titles show: a person's, else the gateway's
        alias (joined in by the read; looked up if not)."""
        if job.number is not None:
            return job.number, job.alias
        assert job.conversation_id is not None
        conversation = await self.store.threads.conversation_by_id(job.conversation_id)
        contact = await self.store.contacts.get(conversation.number)
        return conversation.number, contact.name or conversation.alias

    def forget(self, conversation_id: int) -> None:
        """The conversation's thread was deleted: its next post opens a new one."""
        self._threads.pop(conversation_id, None)
        self._unsaved.discard(conversation_id)

    async def save_opened(self) -> None:
        """Threads opened whose post never came (a stop): the next start must post in them."""
        for conversation in list(self._unsaved):
            thread = self._threads[conversation]
            await self.store.threads.record(conversation, self.platform.name, thread)
            self._unsaved.discard(conversation)
