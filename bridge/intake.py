"""Group commit for webhooks: concurrent requests share one transaction, each waits for it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from bridge.store.records import IngestItem
from bridge.store.sql import SqlStore


class IntakeBatcher:
    """Stores webhook SMS in batches without delaying any of them.

    A request is answered only after the transaction holding its SMS commits. While one
    transaction runs, newly arriving requests queue up and go together in the next one, so
    under load the number of commits stays small while an idle bridge commits at once.
    """

    def __init__(self, store: SqlStore, max_items: int = 500) -> None:
        self._store = store
        self._max_items = max_items
        self._queue: deque[tuple[Sequence[IngestItem], asyncio.Future[list[int | None]]]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[IngestItem]) -> list[int | None]:
        """Store ``items``; returns the new inbound ids (``None`` for duplicates)."""
        if not items:
            return []
        future: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch: list[tuple[Sequence[IngestItem], asyncio.Future[list[int | None]]]] = []
            count = 0
            while self._queue and (not batch or count + len(self._queue[0][0]) <= self._max_items):
                entry = self._queue.popleft()
                batch.append(entry)
                count += len(entry[0])
            flat = [item for items, _future in batch for item in items]
            try:
                results = await self._store.ingest(flat)
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
