"""Group commit: concurrent callers share one transaction, and each waits for it to commit."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Writes items in batches without delaying any of them.

    A caller returns only after the transaction holding its items commits. While one
    transaction runs, newly arriving items queue up and go together in the next one, so under
    load the number of commits (and of database round trips) stays small, while an idle
    bridge commits at once. ``flush`` writes a batch in one transaction and returns one result
    per item, in order.
    """

    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_items: int = 500
    ) -> None:
        self._write = flush
        self._max_items = max_items
        self._queue: deque[tuple[Sequence[T], asyncio.Future[list[R]]]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch: list[tuple[Sequence[T], asyncio.Future[list[R]]]] = []
            count = 0
            while self._queue and (not batch or count + len(self._queue[0][0]) <= self._max_items):
                entry = self._queue.popleft()
                batch.append(entry)
                count += len(entry[0])
            flat = [item for items, _future in batch for item in items]
            try:
                results = list(await self._write(flat))
            except Exception as exc:
                for _items, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            offset = 0
            for items, future in batch:
                if not future.done():
                    future.set_result(results[offset : offset + len(items)])
                offset += len(items)
