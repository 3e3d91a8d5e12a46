"""Backlog drain into one forum with the fake's real Telegram limits: 1 and 2 instances.

The backlog is loaded by webhooks as fast as the bridges take them; then only Telegram's
group limit (20 messages a minute, service messages of new topics included) should set the
pace. The ideal is the posts needed at exactly that rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from bench.cluster import Instance, running, spread, store, table
from bench.common import GROUP, bridge_config, free_port, plain_webhook, workdir
from connectors.chat.telegram.fake import FakeLimits, FakeTelegram
from connectors.chat.telegram.fake_records import MESSAGE_METHODS
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

TARGET = 0.95  # of the ideal rate
STALL = 300.0  # seconds without a new post: give up (a stuck bridge, not a slow one)


@dataclass
class DrainRun:
    instances: int
    sms: int
    numbers: int
    load_seconds: float  # all webhooks answered
    seconds: float  # first webhook sent -> the last post at the fake
    posts: int  # calls the fake counted in the group's window (sends + topic creations)
    too_many: int  # 429 answers, any method
    posted: int  # distinct SMS posted
    duplicates: int  # posts beyond one per SMS
    topics: int
    rejected: int  # webhooks not answered 2xx
    crashed: str  # an instance that died, with its log's tail

    @property
    def ideal(self) -> float:
        limit, window = FakeLimits().group or (20, 60.0)
        return self.posts / (limit / window)

    @property
    def ratio(self) -> float:
        return self.ideal / self.seconds if self.seconds > 0 else 0.0


def _progress(telegram: FakeTelegram) -> Counter[str]:
    return Counter(
        text
        for m in telegram.sent_messages(GROUP)
        if (text := m.get("text") or "").startswith("drain ")
    )


async def _wait_drained(
    label: str, telegram: FakeTelegram, bridges: list[Instance], sms: int, start: float
) -> str:
    """Until every SMS is posted; what went wrong instead ("" when nothing did)."""
    last_count, last_change, last_report = 0, time.monotonic(), time.monotonic()
    while (count := len(_progress(telegram))) < sms:
        now = time.monotonic()
        for bridge in bridges:
            if bridge.proc is not None and bridge.proc.poll() is not None:
                return f"{bridge.name} exited with {bridge.proc.returncode}:\n{bridge.tail()}"
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change > STALL:
            return f"no new post for {STALL:.0f} s at {count}/{sms}"
        if now - last_report >= 60:
            last_report = now
            print(
                f"  [{label}] {count}/{sms} posted after {(now - start) / 60:.1f} min", flush=True
            )
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # a duplicate in flight would land now
    return ""


async def drain_run(instances: int, sms: int, numbers: int) -> DrainRun:
    label = f"{instances} instance" + ("s" if instances > 1 else "")
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram(limits=FakeLimits()) as telegram:
            telegram.add_forum(GROUP)
            async with store("postgresql", tmp) as url:
                configs = [
                    bridge_config(
                        tmp, free_port(), gateway, telegram, fast_pacing=False, store_url=url
                    )
                    for _ in range(instances)
                ]
                requests = [
                    plain_webhook(f"+1555040{i % numbers:04d}", f"drain {i:05d}")
                    for i in range(sms)
                ]
                async with running(configs, tmp, prefix=f"drain{instances}") as bridges:
                    start = time.monotonic()
                    load, rejected = await spread([b.port for b in bridges], requests, 16)
                    print(f"  [{label}] backlog of {sms} SMS loaded in {load:.1f} s", flush=True)
                    crashed = await _wait_drained(label, telegram, bridges, sms, start)
    counted = [
        c
        for c in telegram.calls
        if c.method in MESSAGE_METHODS
        and c.status == 200
        and str(c.params.get("chat_id")) == str(GROUP)
    ]
    posted = _progress(telegram)
    return DrainRun(
        instances=instances,
        sms=sms,
        numbers=numbers,
        load_seconds=load,
        seconds=max((c.at for c in counted), default=start) - start,
        posts=len(counted),
        too_many=sum(1 for c in telegram.calls if c.status == 429),
        posted=len(posted),
        duplicates=sum(posted.values()) - len(posted),
        topics=len(telegram.topics(GROUP)),
        rejected=rejected,
        crashed=crashed,
    )


async def drain(sms: int, numbers: int, *, sequential: bool) -> list[str]:
    """1 and 2 instances (at the same time unless ``sequential``: separate fakes and databases)."""
    limit, window = FakeLimits().group or (20, 60.0)
    print(
        f"\nbacklog drain: {sms} SMS over {numbers} numbers into one forum, the fake's Telegram"
        f" limits on, the bridge's default pacing; ideal about"
        f" {(sms + numbers) / limit * window / 60:.1f} min",
        flush=True,
    )
    if sequential:
        runs = [await drain_run(n, sms, numbers) for n in (1, 2)]
    else:
        runs = list(await asyncio.gather(*(drain_run(n, sms, numbers) for n in (1, 2))))
    failures = []
    rows = []
    for run in runs:
        rows.append(
            [
                f"{run.instances} instance" + ("s" if run.instances > 1 else ""),
                f"{run.load_seconds:.1f}",
                f"{run.seconds:.0f} ({run.seconds / 60:.1f} min)",
                f"{run.posts} ({run.posts - run.topics} + {run.topics} topics)",
                f"{run.ideal:.0f}",
                f"{run.ratio:.3f}",
                str(run.too_many),
                f"{run.posted}/{run.sms}",
                str(run.duplicates),
            ]
        )
        where = f"drain x{run.instances}"
        if run.crashed:
            failures.append(f"{where}: {run.crashed}")
        if run.too_many:
            failures.append(f"{where}: {run.too_many} 429 answers (must be 0)")
        if run.ratio < TARGET:
            failures.append(f"{where}: {run.ratio:.3f} of the ideal rate < {TARGET}")
        if run.posted != run.sms or run.duplicates or run.rejected:
            failures.append(
                f"{where}: {run.posted}/{run.sms} posted, {run.duplicates} duplicates,"
                f" {run.rejected} webhooks not accepted"
            )
        if run.topics != run.numbers:
            failures.append(f"{where}: {run.topics} topics for {run.numbers} numbers")
    headers = [
        "configuration",
        "load s",
        "drain s (from 1st webhook)",
        "posts counted",
        "ideal s",
        "ratio",
        "429s",
        "posted",
        "dupes",
    ]
    print(table(headers, rows))
    print(f"  ideal = posts counted / ({limit} per {window:.0f} s); target ratio >= {TARGET}")
    return failures
