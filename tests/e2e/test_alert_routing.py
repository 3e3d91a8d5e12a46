"""Routes with rules, end to end on Telegram: where each SMS goes, what may be answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from conftest import AGENT, GROUP, Harness

from bridge.replies import ALERTS_ONLY, GATHERING
from bridge.store.schema import chat_jobs, inbound

BANK = "BANK"
CATCH_ALL = {"gateway": "office", "chats": ["support"]}


def topic(harness: Harness, name: str) -> int:
    [found] = [t.thread_id for t in harness.topics() if t.name == name]
    return found


def number_topics(harness: Harness) -> list[str]:
    return sorted(t.name for t in harness.topics() if t.name.startswith("+"))


async def stored(harness: Harness) -> int:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(inbound))).scalar()
    return int(count or 0)


def routed(harness: Harness, route: str, outcome: str) -> float:
    value = harness.bridge.metrics.registry.get_sample_value(
        "smsbridge_routed_sms_total", {"gateway": "office", "route": route, "outcome": outcome}
    )
    return value or 0.0


async def test_each_condition_picks_its_route_and_the_rest_falls_through_to_the_catch_all(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {"name": "codes", "match": {"from": [BANK]}, "chats": ["support"], "thread": "Codes"},
            {
                "name": "critical",
                "match": {"text": ["re:^CRITICAL\\b"]},
                "chat": "support",
                "thread": "Alerts",
            },
            {
                "name": "second-phone",
                "match": {"to": ["phone-2"]},
                "chats": ["support"],
                "thread": "Phone 2",
            },
            {
                "name": "vip",
                "match": {"from": ["+1555999*"]},
                "chats": ["support"],
                "thread": "VIP",
            },
            CATCH_ALL,
        ]
    )
    await harness.sms("Your code is 123456", number=BANK)
    await harness.sms("CRITICAL: disk full on db-1", number="+15550001111")
    await harness.sms("hello from the second phone", number="+15550002222", device="phone-2")
    await harness.sms("I am important", number="+15559990001")
    await harness.sms("just a customer")  # no rule but the catch-all
    await harness.idle()
    assert harness.posts(topic(harness, "Codes")) == ["📩 BANK\nYour code is 123456"]
    [critical] = harness.posts(topic(harness, "Alerts"))
    assert critical.endswith("\nCRITICAL: disk full on db-1")
    [second] = harness.posts(topic(harness, "Phone 2"))
    assert second.endswith("\nhello from the second phone")
    [vip] = harness.posts(topic(harness, "VIP"))
    assert vip.endswith("\nI am important")
    [customer] = number_topics(harness)
    # Each SMS posted once, in one place (topics are posted side by side: no order across them).
    assert sorted(harness.posts()) == sorted(
        ["📩 BANK\nYour code is 123456", critical, second, vip, "just a customer"]
    )
    assert customer.endswith("4567")  # CUSTOMER's own topic, as without rules


async def test_the_first_match_takes_the_sms_unless_continue_fans_it_out(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {
                "match": {"text": ["outage"]},
                "chats": ["support"],
                "thread": "Ops",
                "continue": True,
            },
            {"match": {"text": ["outage", "urgent"]}, "chats": ["support"], "thread": "Pager"},
            CATCH_ALL,
        ]
    )
    await harness.sms("OUTAGE in Brussels")  # case-insensitive: Ops, then Pager; not the thread
    await harness.sms("urgent: call me")  # Pager only: the first match stops
    await harness.idle()
    assert [p.split("\n", 1)[1] for p in harness.posts(topic(harness, "Ops"))] == [
        "OUTAGE in Brussels"
    ]
    assert [p.split("\n", 1)[1] for p in harness.posts(topic(harness, "Pager"))] == [
        "OUTAGE in Brussels",
        "urgent: call me",
    ]
    assert number_topics(harness) == []


async def test_a_reply_in_a_fixed_thread_goes_to_the_sender_of_the_message_it_answers(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[{"gateway": "office", "chats": ["support"], "thread": "Inbox"}]
    )
    await harness.sms("first customer", number="+15550003333")
    await harness.sms("second customer", number="+15550004444")
    await harness.idle()
    inbox = topic(harness, "Inbox")
    first, second = harness.telegram.sent_messages(GROUP, thread_id=inbox)
    telegram = harness.telegram
    telegram.user_message(GROUP, AGENT, "hi second", thread_id=inbox, reply_to=second["message_id"])
    telegram.user_message(GROUP, AGENT, "to whom?", thread_id=inbox)  # replies to nothing
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.settled()
    [sent] = harness.gateway.sent
    assert (sent.recipients, sent.message) == ("+15550004444", "hi second")
    assert harness.posts(inbox)[-1] == GATHERING
    assert len(harness.gateway.sent) == 1  # the stray message went nowhere
    assert first["text"].endswith("first customer")


async def test_an_alerts_only_route_refuses_replies_and_sends_nothing(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[{"gateway": "office", "chats": ["support"], "replies": False}]
    )
    await harness.sms("server down")
    await harness.idle()
    [thread] = harness.topics()
    [alert] = harness.telegram.sent_messages(GROUP, thread_id=thread.thread_id)
    telegram = harness.telegram
    telegram.user_message(GROUP, AGENT, "ack", thread_id=thread.thread_id)
    telegram.user_message(
        GROUP, AGENT, "ack again", thread_id=thread.thread_id, reply_to=alert["message_id"]
    )
    await harness.settled()
    assert harness.gateway.sent == []
    assert harness.posts(thread.thread_id)[-2:] == [ALERTS_ONLY, ALERTS_ONLY]


async def test_repeats_within_collapse_edit_one_post_and_a_new_post_follows_the_window(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[{"gateway": "office", "chats": ["support"], "collapse": "2s"}]
    )
    for _ in range(3):
        await harness.sms("disk 91% full", number="+15550005555")
    await harness.sms("something else", number="+15550005555")
    await harness.idle()
    assert harness.posts() == ["disk 91% full\n(×3)", "something else"]
    edits = [c for c in harness.telegram.calls if c.method == "editMessageText"]
    assert len(edits) == 2 and all(c.status == 200 for c in edits)
    await asyncio.sleep(2.1)
    await harness.sms("disk 91% full", number="+15550005555")  # after the window: a new post
    await harness.idle()
    assert harness.posts() == ["disk 91% full\n(×3)", "something else", "disk 91% full"]


async def test_a_drop_route_stores_and_counts_but_never_posts(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {"name": "spam", "match": {"from": ["re:^[A-Za-z]"]}, "action": "drop"},
            CATCH_ALL,
        ]
    )
    await harness.sms("WIN A PRIZE", number="PROMO")
    await harness.sms("a real customer")
    await harness.idle()
    assert harness.posts() == ["a real customer"]
    assert await stored(harness) == 2
    assert routed(harness, "spam", "dropped") == 1


async def test_an_sms_no_route_takes_is_stored_and_counted_as_unrouted(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[{"match": {"text": ["invoice"]}, "chats": ["support"]}]
    )
    await harness.sms("nothing for anyone")
    await harness.idle()
    assert harness.posts() == []
    assert await stored(harness) == 1
    assert routed(harness, "", "unrouted") == 1


async def test_hours_are_read_on_the_bridges_clock_in_the_routes_timezone(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {
                "match": {"hours": "Mon-Fri 08:00-18:00", "timezone": "Europe/Brussels"},
                "chats": ["support"],
                "thread": "Office hours",
            },
            {"gateway": "office", "chats": ["support"], "thread": "Out of hours"},
        ]
    )
    router = harness.bridge.router
    assert router is not None
    # Thursday 3 Dec 2026, 08:30 in Brussels (07:30 UTC): office hours.
    router.clock = lambda: datetime(2026, 12, 3, 7, 30, tzinfo=UTC)
    await harness.sms("in hours")
    # Thursday 18:30 in Brussels (17:30 UTC), then Saturday noon: out of hours.
    router.clock = lambda: datetime(2026, 12, 3, 17, 30, tzinfo=UTC)
    await harness.sms("after six")
    router.clock = lambda: datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    await harness.sms("on saturday")
    await harness.idle()
    assert [p.split("\n", 1)[1] for p in harness.posts(topic(harness, "Office hours"))] == [
        "in hours"
    ]
    assert [p.split("\n", 1)[1] for p in harness.posts(topic(harness, "Out of hours"))] == [
        "after six",
        "on saturday",
    ]
    assert number_topics(harness) == []  # CUSTOMER has no topic of their own


async def test_collapse_counts_each_thread_of_a_fan_out_on_its_own_post(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {
                "match": {"text": ["disk"]},
                "chats": ["support"],
                "thread": "Ops",
                "collapse": "1m",
                "continue": True,
            },
            {"gateway": "office", "chats": ["support"], "collapse": "1m"},
        ]
    )
    await harness.sms("disk 91% full", number="+15550005555")
    await harness.idle()
    await harness.sms("disk 91% full", number="+15550005555")
    await harness.idle()
    [own] = [t.thread_id for t in harness.topics() if t.name.startswith("+")]
    assert harness.posts(topic(harness, "Ops")) == ["📩 +1 555-000-5555\ndisk 91% full\n(×2)"]
    assert harness.posts(own) == ["disk 91% full\n(×2)"]


async def test_alerts_only_holds_in_a_numbers_own_thread_of_a_chat_other_routes_answer_in(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[
            {"match": {"from": ["+1555000*"]}, "chats": ["support"], "replies": False},
            CATCH_ALL,
        ]
    )
    await harness.sms("pump 3 stopped", number="+15550006666")  # alerts only, its own topic
    await harness.idle()
    [thread] = harness.topics()
    [alert] = harness.telegram.sent_messages(GROUP, thread_id=thread.thread_id)
    telegram = harness.telegram
    telegram.user_message(GROUP, AGENT, "ack", thread_id=thread.thread_id)
    await harness.settled()
    [notice] = harness.telegram.sent_messages(GROUP, thread_id=thread.thread_id)[1:]
    telegram.user_message(
        GROUP, AGENT, "ack?", thread_id=thread.thread_id, reply_to=notice["message_id"]
    )
    await harness.settled()
    assert harness.gateway.sent == []
    assert harness.posts(thread.thread_id) == [alert["text"], ALERTS_ONLY, ALERTS_ONLY]


async def test_a_collapse_edit_done_again_after_a_crash_posts_nothing_new(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(
        routes=[{"gateway": "office", "chats": ["support"], "collapse": "1m"}]
    )
    for _ in range(2):
        await harness.sms("disk 91% full", number="+15550005555")
    await harness.idle()
    assert harness.posts() == ["disk 91% full\n(×2)"]
    # A crash after Telegram applied the edit, before it was recorded: the edit runs again.
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.write() as conn:
        await conn.execute(
            sa.update(chat_jobs).where(chat_jobs.c.kind == "edit").values(state="pending")
        )
    harness.bridge._wake("chat", "support")
    await harness.idle()
    assert harness.posts() == ["disk 91% full\n(×2)"]
