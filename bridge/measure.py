"""The periodic measurement behind the gauges: queues in the store, and poll lag."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from bridge.metrics import QUEUES, Metrics
from bridge.polling import POLL_KINDS, Poller
from bridge.store.sql import SqlStore


async def measure(
    store: SqlStore,
    metrics: Metrics,
    chats: Iterable[str],
    gateways: Iterable[str],
    pollers: Iterable[Poller],
) -> None:
    """Set every queue's depth and oldest age, and each polled gateway's lag.

    Every configured chat and gateway gets its series, at 0 when its queue is empty: a series
    that is absent cannot be told from a bridge that stopped measuring. Each instance of a
    deployment measures the same store; the alert rules take the max across instances.
    """
    queues = await store.queues()
    now = time.time()
    found = {(q.queue, q.name): q for q in queues}
    chat_names, gateway_names = list(chats), list(gateways)
    for queue in QUEUES:
        for name in gateway_names if queue == "outbound_sms" else chat_names:
            item = found.get((queue, name))
            metrics.queue_depth.labels(queue, name).set(item.depth if item else 0)
            metrics.queue_oldest.labels(queue, name).set(max(0.0, now - item.oldest) if item else 0)
    # The older, coarser gauge: all of a chat's jobs together.
    for name in chat_names:
        pending = sum(q.depth for q in queues if q.name == name and q.queue != "outbound_sms")
        metrics.backlog.labels("chat_jobs", name).set(pending)
    for name in gateway_names:
        item = found.get(("outbound_sms", name))
        metrics.backlog.labels("outbox", name).set(item.depth if item else 0)
    for poller in pollers:
        lags = poller.lags(now)
        for kind in POLL_KINDS:
            if kind in lags:
                metrics.poll_lag.labels(poller.name, kind).set(lags[kind])
            else:
                # Not polled here (another instance holds the duty, or this kind is off):
                # a lag that only grows would page someone for nothing.
                with contextlib.suppress(KeyError):
                    metrics.poll_lag.remove(poller.name, kind)
