"""SMS in: the three receive paths, de-duplication, the poll window across restarts, threads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from conftest import CUSTOMER, Harness

from bridge.store.schema import inbound
from bridge.testing.fake_harness import more_polls


async def stored_inbound(harness: Harness) -> int:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return len((await conn.execute(inbound.select())).all())


def polls(harness: Harness) -> int:
    return sum(r.path.startswith("/getsms") for r in harness.gateway.requests)


async def polled_again(harness: Harness, times: int = 2) -> None:
    """Until the bridge has polled ``times`` more and done all that came of it. It polls one
    at a time, so a poll begun means the one before it was taken in and stored."""
    start = polls(harness)
    await harness.gateway.wait_for(lambda: polls(harness) >= start + times)
    await harness.settled()


async def test_signed_webhook_opens_a_topic_named_for_the_number(harness: Harness) -> None:
    await harness.sms("Can you call me back?", alias="Taylor")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    assert topic.name == "Taylor (+1 555-123-4567)"
    assert harness.posts(thread_id=topic.thread_id) == ["Can you call me back?"]
    assert harness.telegram.violations == []


async def test_plain_webhook_with_url_token(harness: Harness) -> None:
    sms = harness.gateway.receive_sms(CUSTOMER, "plain hello")
    response = await harness.gateway.deliver_plain_webhook(harness.plain_hook, sms)
    assert response.status_code == 202
    await harness.telegram.wait_for(lambda: harness.posts() == ["plain hello"])
    [topic] = harness.topics()
    assert topic.name == "+1 555-123-4567"  # no alias on the plain webhook


async def test_redelivered_webhook_is_posted_once(harness: Harness) -> None:
    sms = await harness.sms("only once")
    again = await harness.gateway.deliver_received_v2(harness.signed_hook, sms)
    plain = await harness.gateway.deliver_plain_webhook(harness.plain_hook, sms)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert plain.status_code == 200
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    await harness.settled()
    assert harness.posts() == ["only once"]
    assert await stored_inbound(harness) == 1


async def test_same_envelope_redelivered_with_a_new_body_is_still_one(harness: Harness) -> None:
    sms = harness.gateway.receive_sms(CUSTOMER, "first")
    await harness.gateway.deliver_received_v2(harness.signed_hook, sms, event_id="evt-1")
    other = harness.gateway.receive_sms(CUSTOMER, "second")
    response = await harness.gateway.deliver_received_v2(
        harness.signed_hook, other, event_id="evt-1"
    )
    assert response.json() == {"status": "duplicate"}
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)


async def test_polling_posts_new_sms_and_resumes_from_its_window_after_a_restart(
    start_bridge: Callable[..., Any],
) -> None:
    installed = time.time()
    first = await start_bridge(gateway={"receive": "poll"})
    first.gateway.receive_sms(CUSTOMER, "polled one")
    await first.telegram.wait_for(lambda: first.posts() == ["polled one"])
    polled = time.time()  # after the first poll started, before the restart
    await more_polls(first.bridge, "office")
    last_poll = time.time()
    await first.bridge.stop()
    # Dated before the last poll (a phone that synced late): the restarted bridge asks from
    # its stored window, not from its own start, so it still finds it.
    first.gateway.receive_sms(CUSTOMER, "while we were down", timestamp_unix=int(last_poll) - 30)
    second = await start_bridge(gateway={"receive": "poll"})
    await second.telegram.wait_for(
        lambda: second.posts() == ["polled one", "while we were down"], timeout=5
    )
    await more_polls(second.bridge, "office", count=3)
    assert second.posts() == ["polled one", "while we were down"]
    # Within its first day (poll_overlap) every poll asks from the first start's lookback,
    # kept in the store: not from the restarted bridge's own start.
    getsms = [r for r in second.gateway.requests if r.path.startswith("/getsms")]
    asked = int(getsms[-1].params["after_timestamp_unix"])
    assert installed - 3600 - 2 <= asked <= polled - 3600


async def test_first_poll_skips_sms_older_than_the_lookback(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(gateway={"receive": "poll", "first_poll_lookback": 600})
    harness.gateway.receive_sms(CUSTOMER, "ancient", timestamp_unix=int(time.time()) - 7200)
    harness.gateway.receive_sms(CUSTOMER, "recent", timestamp_unix=int(time.time()) - 60)
    await harness.telegram.wait_for(lambda: harness.posts() == ["recent"])
    await more_polls(harness.bridge, "office", count=3)
    assert harness.posts() == ["recent"]


async def test_webhook_and_poll_seeing_the_same_sms_post_it_once(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(gateway={"receive": "both"})
    await harness.sms("seen twice")  # the phone's webhook, and the next poll, both carry it
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    await polled_again(harness)
    assert harness.posts() == ["seen twice"]


async def test_milliseconds_timestamps_are_understood(start_bridge: Callable[..., Any]) -> None:
    harness: Harness = await start_bridge(gateway={"receive": "poll"})
    harness.gateway.ms_timestamps = True
    harness.gateway.receive_sms(CUSTOMER, "in ms")
    await harness.telegram.wait_for(lambda: harness.posts() == ["in ms"])
    await polled_again(harness)
    assert harness.posts() == ["in ms"]


async def test_two_sms_from_a_new_number_at_once_open_one_topic(harness: Harness) -> None:
    first = harness.gateway.receive_sms("+15550001111", "one")
    second = harness.gateway.receive_sms("+15550001111", "two")
    answers = await asyncio.gather(
        harness.gateway.deliver_received_v2(harness.signed_hook, first),
        harness.gateway.deliver_received_v2(harness.signed_hook, second),
    )
    assert [a.status_code for a in answers] == [202, 202]
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 2)
    [topic] = harness.topics()
    assert sorted(harness.posts(thread_id=topic.thread_id)) == ["one", "two"]
    assert harness.telegram.count("createForumTopic") == 1


async def test_each_number_gets_its_own_topic_in_order(harness: Harness) -> None:
    for index in range(3):
        await harness.sms(f"a{index}", number="+15550000001")
        await harness.sms(f"b{index}", number="+15550000002")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 6)
    topics = {t.name: t.thread_id for t in harness.topics()}
    assert harness.posts(thread_id=topics["+1 555-000-0001"]) == ["a0", "a1", "a2"]
    assert harness.posts(thread_id=topics["+1 555-000-0002"]) == ["b0", "b1", "b2"]


async def test_long_sms_is_split_to_telegrams_limit(harness: Harness) -> None:
    text = " ".join(f"word{i}" for i in range(1500))  # 13 389 characters
    await harness.sms(text)
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 4)
    posts = harness.posts()
    assert all(0 < len(p) <= 4096 for p in posts)
    assert " ".join(posts) == text
    assert harness.telegram.violations == []


async def test_sender_that_is_not_a_number_still_gets_a_thread(harness: Harness) -> None:
    await harness.sms("Your code is 123456", number="BANK")
    await harness.telegram.wait_for(lambda: len(harness.posts()) == 1)
    [topic] = harness.topics()
    assert topic.name == "BANK"
    assert harness.posts(thread_id=topic.thread_id) == ["Your code is 123456"]
