"""Two real `smsbridge run` processes on one PostgreSQL database behave as one bridge.

Webhooks go to either (as a load balancer spreads them); each duty (a gateway's polling and
outbox, the chat's posting and its getUpdates) runs on one of them; when one dies the other
takes its duties within lease_ttl.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import AGENT, GROUP, config_dict
from processes import BridgeProcess

from bridge.phone import pretty
from bridge.posting import CONCURRENCY
from bridge.testing.fake_harness import free_port
from connectors.chat.telegram.fake import FakeTelegram
from connectors.sms.smsmobileapi.fake import FakeSmsMobileApi, ReceivedSms

LEASE_TTL = 3.0  # short, so that takeovers are quick to test; the default is 10


class Pair:
    """Two bridge processes with one config (but their own ports) and one database."""

    def __init__(self, tmp_path: Path, data: dict[str, Any], *, public: bool = False) -> None:
        """``public``: the first instance's URL is the public URL of both (Telegram pushes
        there), as a load balancer's would be."""
        self.processes: list[BridgeProcess] = []
        ports = [free_port(), free_port()]
        for name, port in zip(("a", "b"), ports, strict=True):
            mine = {**data, "server": {"host": "127.0.0.1", "port": port}}
            if public:
                mine["server"]["public_url"] = f"http://127.0.0.1:{ports[0]}"
            config = tmp_path / f"{name}.yaml"
            config.write_text(yaml.safe_dump(mine), encoding="utf-8")
            self.processes.append(BridgeProcess(config, tmp_path / f"{name}.log", port))

    async def start(self) -> None:
        for process in self.processes:
            process.start()
        await asyncio.gather(*(p.healthy() for p in self.processes))

    async def owner(self, duty: str, timeout: float = 20.0) -> BridgeProcess:  # noqa: ASYNC109
        """The one process with ``duty`` active; asserts no two have it at once."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p in self.processes if p.proc is not None and p.proc.poll() is None]
            reports = await asyncio.gather(*(p.health() for p in alive))
            active = [p for p, r in zip(alive, reports, strict=True) if state(r, duty) == "active"]
            assert len(active) <= 1, f"{duty} active on {len(active)} instances at once"
            if active:
                return active[0]
            assert time.monotonic() < deadline, f"nobody took {duty}"
            await asyncio.sleep(0.1)

    def other(self, process: BridgeProcess) -> BridgeProcess:
        return next(p for p in self.processes if p is not process)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.tail(40)}" for p in self.processes)


def state(report: dict[str, Any], duty: str) -> str | None:
    found: str | None = report.get("duties", {}).get(duty, {}).get("state")
    return found


@pytest.fixture
async def pair(
    tmp_path: Path, pg_url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> AsyncIterator[Pair]:
    data = config_dict(pg_url, gateway, telegram)
    data["store"]["lease_ttl"] = LEASE_TTL
    pair = Pair(tmp_path, data)
    try:
        await pair.start()
        yield pair
    finally:
        pair.stop()
        print(pair.logs())


def hook(process: BridgeProcess) -> str:
    return f"{process.url}/webhooks/sms/office"


async def deliver(gateway: FakeSmsMobileApi, url: str, sms: ReceivedSms) -> int | None:
    try:
        return (await gateway.deliver_received_v2(url, sms)).status_code
    except httpx.HTTPError:
        return None


async def deliver_until_taken(gateway: FakeSmsMobileApi, urls: list[str], sms: ReceivedSms) -> str:
    """As a gateway behind a load balancer: retry, on any instance, until one acknowledges."""
    for url in itertools.islice(itertools.cycle(urls), 200):
        status = await deliver(gateway, url, sms)
        if status is not None and 200 <= status < 300:
            return url
        await asyncio.sleep(0.1)
    raise AssertionError(f"webhook for {sms.message!r} never acknowledged")


def posts(telegram: FakeTelegram) -> Counter[str]:
    return Counter(m.get("text") or "" for m in telegram.sent_messages(GROUP))


def topics(telegram: FakeTelegram) -> dict[int, str]:
    return {t.thread_id: t.name for t in telegram.topics(GROUP) if not t.deleted}


def conflicts(telegram: FakeTelegram) -> int:
    return sum(1 for c in telegram.calls if c.status == 409)


async def test_webhooks_to_both_post_each_sms_once_with_one_topic_per_number_and_reply_once(
    pair: Pair, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    duties = ["chat:support", "gateway:office", "send:office", "housekeeping"]
    for duty in duties:
        await pair.owner(duty)
    a, b = pair.processes
    for process in (a, b):
        report = await process.health()
        assert report["status"] == "ok", report  # standby is healthy

    numbers = [f"+1555030{i:04d}" for i in range(12)]
    burst = [gateway.receive_sms(n, f"hello {i} from {n}") for i in range(3) for n in numbers]
    # Every SMS to both instances at the same moment: the first SMS of each new number
    # reaches both at once, and every SMS is stored twice over, concurrently.
    answers = await asyncio.gather(
        *(deliver(gateway, hook(p), sms) for sms in burst for p in (a, b))
    )
    assert all(status in (200, 202) for status in answers), answers
    texts = [sms.message for sms in burst]
    await telegram.wait_for(lambda: set(texts) <= set(posts(telegram)), timeout=20)
    assert {text: posts(telegram)[text] for text in texts} == dict.fromkeys(texts, 1)
    names = topics(telegram)
    assert sorted(names.values()) == sorted(pretty(n) for n in numbers)  # one topic each
    for message in telegram.sent_messages(GROUP):
        number = message["text"].rsplit(" ", 1)[1]
        assert names[message["message_thread_id"]] == pretty(number)

    # Replies: read by the one getUpdates consumer, sent once by the one outbox owner.
    by_topic = {name: thread for thread, name in names.items()}
    replies = {}
    for n in numbers[:6]:
        text = f"reply to {n}"
        message = telegram.user_message(GROUP, AGENT, text, thread_id=by_topic[pretty(n)])
        replies[text] = message["message_id"]
    await gateway.wait_for(lambda: set(replies) <= {s.message for s in gateway.sent}, timeout=20)
    await telegram.wait_for(
        lambda: all(telegram.reaction(GROUP, m) == ["✍"] for m in replies.values()), timeout=20
    )
    await asyncio.sleep(1.0)  # anything sent twice would have gone by now
    assert Counter(s.message for s in gateway.sent) == Counter(dict.fromkeys(replies, 1))
    assert conflicts(telegram) == 0
    assert telegram.violations == []


async def test_a_polled_phone_is_polled_by_one_instance_and_each_sms_posted_once(
    tmp_path: Path, pg_url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    interval = 0.5
    data = config_dict(
        pg_url, gateway, telegram, gateway={"receive": "poll", "poll_interval": interval}
    )
    data["store"]["lease_ttl"] = LEASE_TTL
    pair = Pair(tmp_path, data)
    try:
        await pair.start()
        await pair.owner("gateway:office")
        before = sum(1 for r in gateway.requests if r.path == "/getsms/")
        started = time.monotonic()
        sms = [gateway.receive_sms(f"+1555040{i % 4:04d}", f"polled #{i}") for i in range(20)]
        texts = [s.message for s in sms]
        await telegram.wait_for(lambda: set(texts) <= set(posts(telegram)), timeout=20)
        await asyncio.sleep(max(0.0, 6.0 - (time.monotonic() - started)))
        polls = sum(1 for r in gateway.requests if r.path == "/getsms/") - before
        elapsed = time.monotonic() - started
    finally:
        pair.stop()
        print(pair.logs())
    assert {t: posts(telegram)[t] for t in texts} == dict.fromkeys(texts, 1)
    expected = elapsed / interval
    print(f"{polls} polls in {elapsed:.1f} s at one per {interval} s ({expected:.1f} expected)")
    # One poller for the pair: about one poll per interval, not one per instance.
    assert 0.5 * expected <= polls <= 1.3 * expected + 1


@pytest.mark.parametrize("victim", ["owner", "standby"])
async def test_kill_9_of_either_instance_mid_burst_loses_nothing_and_sends_sms_once(
    pair: Pair, gateway: FakeSmsMobileApi, telegram: FakeTelegram, victim: str
) -> None:
    owner = await pair.owner("chat:support")
    assert await pair.owner("send:office") is owner  # one instance starts with every duty
    killed = owner if victim == "owner" else pair.other(owner)
    survivor = pair.other(killed)
    numbers = [f"+1555050{i:04d}" for i in range(6)]
    # Topics to answer in, before the chaos.
    first = [gateway.receive_sms(n, f"first from {n}") for n in numbers]
    for sms in first:
        await deliver_until_taken(gateway, [hook(survivor)], sms)
    await telegram.wait_for(lambda: len(topics(telegram)) == len(numbers), timeout=20)
    by_topic = {name: thread for thread, name in topics(telegram).items()}

    telegram.latency = 0.05
    gateway.latency = 0.05
    burst = [gateway.receive_sms(numbers[i % 6], f"burst #{i:02d}") for i in range(40)]
    urls = [hook(p) for p in pair.processes]

    async def spread(i: int, sms: ReceivedSms) -> str:
        await asyncio.sleep((i // 2) * 0.05)  # over a second, so the kill falls inside
        return await deliver_until_taken(gateway, urls[i % 2 :] + urls[: i % 2], sms)

    deliveries = [asyncio.create_task(spread(i, sms)) for i, sms in enumerate(burst)]
    replies = []
    for i in range(8):
        text = f"reply #{i} to {numbers[i % 6]}"
        telegram.user_message(GROUP, AGENT, text, thread_id=by_topic[pretty(numbers[i % 6])])
        replies.append(text)
        await asyncio.sleep(0.03)
    await asyncio.sleep(random.uniform(0.1, 0.4))  # a kill moment, not a secret
    killed.kill()
    killed_at = time.monotonic()
    texts = [sms.message for sms in burst]
    owed = len(set(texts) - set(posts(telegram)))
    print(f"at the kill of the {victim}, {owed} of {len(texts)} SMS were still to post")
    assert owed > 0, "the kill came after all the work: it hit nothing in flight"
    await asyncio.gather(*deliveries)

    await telegram.wait_for(lambda: set(texts) <= set(posts(telegram)), timeout=LEASE_TTL + 15)
    await gateway.wait_for(
        lambda: set(replies) <= {s.message for s in gateway.sent}, timeout=LEASE_TTL + 15
    )
    took = time.monotonic() - killed_at
    print(f"{victim} killed: the survivor finished everything {took:.1f} s later")
    assert took < LEASE_TTL + 10
    for duty in ("chat:support", "gateway:office", "send:office", "housekeeping"):
        assert await pair.owner(duty) is survivor

    # The killed instance rejoins: it takes nothing over and repeats nothing.
    shown, sent = posts(telegram), Counter(s.message for s in gateway.sent)
    killed.start()
    await killed.healthy()
    await asyncio.sleep(LEASE_TTL)
    assert posts(telegram) == shown
    assert Counter(s.message for s in gateway.sent) == sent
    assert sent == Counter(dict.fromkeys(replies, 1))  # each reply sent exactly once
    # A post Telegram accepted just before the kill cannot be told from one it never got: at
    # most one repeat per post the dead owner had in flight.
    repeats = sum(n - 1 for text, n in shown.items() if text in texts)
    assert repeats <= (CONCURRENCY if victim == "owner" else 0), shown
    assert len(topics(telegram)) == len(numbers)
    assert conflicts(telegram) == 0


async def test_a_rolling_restart_loses_nothing_and_repeats_nothing(
    pair: Pair, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    a, b = pair.processes
    urls = [hook(a), hook(b)]
    numbers = [f"+1555060{i:04d}" for i in range(5)]
    sent_sms: list[ReceivedSms] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            sms = gateway.receive_sms(numbers[i % 5], f"rolling #{i:03d}")
            sent_sms.append(sms)
            await deliver_until_taken(gateway, urls[i % 2 :] + urls[: i % 2], sms)
            await asyncio.sleep(0.05)

    flow = asyncio.create_task(traffic())
    for process in (a, b):
        await asyncio.sleep(1.0)
        assert await process.terminate() == 0, process.tail()
        await asyncio.sleep(0.5)
        process.start()
        await process.healthy()
    await asyncio.sleep(1.0)
    stop.set()
    await flow

    texts = [sms.message for sms in sent_sms]
    await telegram.wait_for(lambda: set(texts) <= set(posts(telegram)), timeout=20)
    await asyncio.sleep(1.0)
    assert {t: posts(telegram)[t] for t in texts} == dict.fromkeys(texts, 1)
    assert sorted(topics(telegram).values()) == sorted(pretty(n) for n in numbers)
    assert conflicts(telegram) == 0
    print(f"{len(texts)} SMS through a rolling restart of both instances")


async def test_a_telegram_update_pushed_to_both_instances_sends_its_reply_once(
    tmp_path: Path, pg_url: str, gateway: FakeSmsMobileApi, telegram: FakeTelegram
) -> None:
    data = config_dict(pg_url, gateway, telegram)
    data["store"]["lease_ttl"] = LEASE_TTL
    pair = Pair(tmp_path, data, public=True)
    b = pair.processes[1]  # Telegram pushes to the first; the second gets updates by hand
    try:
        await pair.start()
        await telegram.wait_for(lambda: telegram.webhook is not None)
        assert telegram.webhook is not None
        secret = telegram.webhook["secret_token"]
        sms = gateway.receive_sms("+15550700001", "hello by webhook")
        await deliver_until_taken(gateway, [hook(b)], sms)
        await telegram.wait_for(lambda: len(topics(telegram)) == 1, timeout=15)
        [thread] = topics(telegram)
        texts = []
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            for i in range(5):
                text = f"webhook reply #{i}"
                texts.append(text)
                message = telegram.user_message(GROUP, AGENT, text, thread_id=thread)
                [update] = [
                    u
                    for u in telegram.pending_updates()
                    if u.get("message", {}).get("message_id") == message["message_id"]
                ]
                # Telegram pushes it to the first instance; the same update reaches the second
                # too (a retry through the load balancer).
                answer = await client.post(
                    f"{b.url}/webhooks/telegram/support",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                )
                assert answer.status_code == 200, answer.text
        await gateway.wait_for(lambda: set(texts) <= {s.message for s in gateway.sent}, timeout=15)
        await telegram.wait_for(lambda: not telegram.pending_updates(), timeout=15)
        await asyncio.sleep(1.0)
    finally:
        pair.stop()
        print(pair.logs())
    assert Counter(s.message for s in gateway.sent) == Counter(dict.fromkeys(texts, 1))
    assert conflicts(telegram) == 0
