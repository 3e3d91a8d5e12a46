"""Takeover: kill -9 the instance that owns the gateway's poller and the Telegram consumer.

Two instances, default ``lease_ttl`` and Telegram long polling at its default timeout; the
gateway polled (``receive: poll``) so that a poller duty exists. Right after the kill, an agent
replies in Telegram and an SMS arrives on the phone. Measured from the kill until (a) the
survivor's /healthz shows every duty "active", (b) the reply has left as an SMS and (c) the
SMS is posted. The killed instance then rejoins (as standby) and the next round kills the
new owner.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.cluster import Instance, store, table
from bench.common import AGENT, GROUP, bridge_config, free_port, workdir
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi

TARGET = 15.0  # seconds, with the defaults
POLL_INTERVAL = 1.0  # the gateway's poll interval: short, so polling adds little to the figure
NUMBER = "+15550300001"
GIVE_UP = 60.0
KEY_DUTIES = ("gateway:office", "chat:support")


async def _until(check: Callable[[], Awaitable[bool]], start: float) -> float | None:
    """Seconds from ``start`` until ``check`` holds; None after GIVE_UP."""
    while time.monotonic() - start < GIVE_UP:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def _duties(instance: Instance) -> dict[str, str]:
    try:
        return await instance.duties()
    except Exception:  # a starting or dying instance: no answer yet
        return {}


async def _owner(a: Instance, b: Instance) -> tuple[Instance, Instance, str]:
    """The instance holding the key duties, the other, and what it holds (they may be split)."""
    for _ in range(200):
        held = {x.name: await _duties(x) for x in (a, b)}
        for owner, other in ((a, b), (b, a)):
            mine = [d for d in KEY_DUTIES if held[owner.name].get(d) == "active"]
            theirs = [d for d in KEY_DUTIES if held[other.name].get(d) == "active"]
            if mine and len(mine) + len(theirs) == len(KEY_DUTIES) and "gateway:office" in mine:
                return owner, other, "+".join(mine)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no instance holds {KEY_DUTIES}: {held}")


def _config(
    tmp: Path, url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> dict[str, Any]:
    config = bridge_config(
        tmp, free_port(), gateway, telegram, fast_pacing=False, receive="poll", store_url=url
    )
    config["gateways"][0]["poll_interval"] = POLL_INTERVAL
    del config["chats"][0]["poll_timeout"]  # Telegram's long poll at the bridge's default
    return config


async def takeover(repeat: int) -> list[str]:
    rounds: list[list[object]] = []
    failures: list[str] = []
    with workdir() as tmp:
        async with FakeSmsMobileApi() as gateway, FakeTelegram() as telegram:
            telegram.add_forum(GROUP)
            async with store("postgresql", tmp) as url:
                a = Instance(_config(tmp, url, gateway, telegram), tmp, "a")
                b = Instance(_config(tmp, url, gateway, telegram), tmp, "b")
                try:
                    a.start()
                    await a.healthy()
                    b.start()
                    await b.healthy()
                    # The conversation the agent answers in: its topic comes from a polled SMS.
                    gateway.receive_sms(NUMBER, "hello")
                    await telegram.wait_for(lambda: bool(_posts(telegram, "hello")), 30)
                    thread = telegram.sent_messages(GROUP)[0]["message_thread_id"]
                    for index in range(1, repeat + 1):
                        owner, survivor, held = await _owner(a, b)
                        await asyncio.sleep(1.0)  # both steady: renewals under way, a poll idle
                        figures = await _one(owner, survivor, gateway, telegram, thread, index)
                        done = [f for f in figures if f is not None]
                        worst = max(done) if len(done) == len(figures) else None
                        rounds.append(
                            [
                                str(index),
                                f"{owner.name} ({held})",
                                *(_s(f) for f in figures),
                                _s(worst),
                            ]
                        )
                        if worst is None or worst > TARGET:
                            failures.append(f"takeover round {index}: {_s(worst)} > {TARGET} s")
                        owner.start()  # rejoins; the next round kills the new owner
                        await owner.healthy()
                finally:
                    a.stop()
                    b.stop()
    failures += _exactly_once(gateway, telegram, repeat)
    print(
        f"\ntakeover after kill -9 of the owner: 2 instances, default lease_ttl, gateway polled"
        f" every {POLL_INTERVAL:g} s, Telegram long polling; seconds from the kill"
    )
    headers = ["round", "killed (held)", "duties active", "reply sent", "SMS posted", "takeover"]
    print(table(headers, rounds, left=2))
    print(f"  target: takeover (the slowest of the three) <= {TARGET:g} s")
    return failures


async def _one(
    owner: Instance,
    survivor: Instance,
    gateway: FakeSmsMobileApi,
    telegram: FakeTelegram,
    thread: int,
    index: int,
) -> tuple[float | None, float | None, float | None]:
    reply, sms = f"takeover reply {index}", f"takeover sms {index}"
    start = time.monotonic()
    owner.kill()
    telegram.user_message(GROUP, AGENT, reply, thread_id=thread)
    gateway.receive_sms(NUMBER, sms)

    async def active() -> bool:
        duties = await _duties(survivor)
        return all(d in duties for d in KEY_DUTIES) and set(duties.values()) == {"active"}

    async def sent() -> bool:
        return any(s.message == reply for s in gateway.sent)

    async def posted() -> bool:
        return bool(_posts(telegram, sms))

    a, b, c = await asyncio.gather(
        _until(active, start), _until(sent, start), _until(posted, start)
    )
    return a, b, c


def _posts(telegram: FakeTelegram, text: str) -> list[dict[str, Any]]:
    return [m for m in telegram.sent_messages(GROUP) if m.get("text") == text]


def _exactly_once(gateway: FakeSmsMobileApi, telegram: FakeTelegram, repeat: int) -> list[str]:
    sent = Counter(s.message for s in gateway.sent)
    posted = Counter(m.get("text") for m in telegram.sent_messages(GROUP))
    wrong = [f"reply {i} sent {sent[f'takeover reply {i}']}x" for i in range(1, repeat + 1)]
    wrong += [f"sms {i} posted {posted[f'takeover sms {i}']}x" for i in range(1, repeat + 1)]
    wrong = [w for w in wrong if not w.endswith(" 1x")]
    return [f"takeover: not exactly once: {', '.join(wrong)}"] if wrong else []


def _s(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.1f}"
