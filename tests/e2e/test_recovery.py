"""Recovery from 429s, 5xx, timeouts and refusals, both directions, through a real bridge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from conftest import AGENT, CUSTOMER, GROUP, Harness

from bridge.store.schema import outbox
from connectors.chat.telegram.fake import Call, FakeLimits
from connectors.sms.smsmobileapi.fake import Req

StartBridge = Callable[..., Awaitable[Harness]]
BUSY = 1.0  # room for a busy 2-core machine in an upper bound on wall time


# -- helpers ---------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling helper like the fakes' wait_for
) -> None:
    """Poll an async condition (store state) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


async def outbox_rows(harness: Harness) -> list[Any]:
    assert harness.bridge.store is not None
    async with harness.bridge.store.db.read() as conn:
        return list((await conn.execute(outbox.select().order_by(outbox.c.id))).all())


async def backlog(harness: Harness) -> dict[str, dict[str, int]]:
    assert harness.bridge.store is not None
    return await harness.bridge.store.backlog()


async def idle(harness: Harness) -> bool:
    """Nothing left to post or send: the bridge cannot act again without new input."""
    pending = await backlog(harness)
    return not any(pending["chat_jobs"].values()) and not any(pending["outbox"].values())


async def topic_for(harness: Harness, text: str = "hi", number: str = CUSTOMER) -> int:
    """An SMS in from ``number``; returns the thread it was posted in (now recorded)."""
    await harness.sms(text, number=number)
    await harness.telegram.wait_for(lambda: text in harness.posts())
    message = next(m for m in harness.telegram.sent_messages(GROUP) if m.get("text") == text)
    thread: int = message["message_thread_id"]
    return thread


async def reply_in(harness: Harness, text: str = "On my way!") -> tuple[int, int]:
    """A customer's SMS opens a topic and an agent answers there: (thread, answer message id)."""
    thread = await topic_for(harness)
    reply = harness.telegram.user_message(GROUP, AGENT, text, thread_id=thread)
    return thread, int(reply["message_id"])


def calls(harness: Harness, method: str) -> list[Call]:
    return [c for c in harness.telegram.calls if c.method == method]


def requests(harness: Harness, path: str) -> list[Req]:
    return [r for r in harness.gateway.requests if r.path == path]


def reaction(harness: Harness, message_id: int) -> list[str]:
    return harness.telegram.reaction(GROUP, message_id)


# -- Telegram side ---------------------------------------------------------------------------


async def test_telegram_429_holds_the_chat_for_retry_after_and_posts_once(
    harness: Harness,
) -> None:
    harness.telegram.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    await harness.sms("flood-controlled")
    await harness.telegram.wait_for(lambda: harness.posts() == ["flood-controlled"], timeout=10)
    limited, posted = calls(harness, "sendMessage")  # nothing else was tried during the hold
    assert (limited.status, posted.status) == (429, 200)
    assert posted.at - limited.at >= 1.0
    assert harness.telegram.count("createForumTopic") == 1
    assert len(harness.topics()) == 1
    assert harness.telegram.violations == []


async def test_telegram_429_holds_later_posts_too(harness: Harness) -> None:
    thread = await topic_for(harness, "first")
    harness.telegram.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    for text in ("second", "third", "fourth"):
        await harness.sms(text)
    expected = ["first", "second", "third", "fourth"]
    await harness.telegram.wait_for(lambda: harness.posts(thread) == expected, timeout=10)
    sends = calls(harness, "sendMessage")
    limited = next(c for c in sends if c.status == 429)
    after = [c for c in sends if c.at > limited.at]
    assert [c.status for c in after] == [200, 200, 200]
    assert min(c.at for c in after) - limited.at >= 1.0  # the hold covers the whole chat
    assert harness.telegram.count("sendMessage", 429) == 1


async def test_telegram_500s_are_retried_with_backoff_and_posted_once(harness: Harness) -> None:
    harness.telegram.fail_next("sendMessage", status=500, count=2)
    await harness.sms("after two 500s")
    await harness.telegram.wait_for(lambda: harness.posts() == ["after two 500s"], timeout=10)
    first, second, ok = calls(harness, "sendMessage")
    assert [first.status, second.status, ok.status] == [500, 500, 200]
    # backoff(attempts) = 2**attempts * U(0.5, 1): 0.5-1 s, then 1-2 s (plus a little work).
    # The lower bounds prove the doubling; the upper ones only that it stays a backoff of that
    # size, with room for a busy machine's scheduling (which only ever adds time).
    assert 0.5 <= second.at - first.at < 1.0 + BUSY
    assert 1.0 <= ok.at - second.at < 2.0 + BUSY
    assert harness.telegram.count("createForumTopic") == 1


async def test_telegram_429_on_topic_creation_opens_one_topic(harness: Harness) -> None:
    harness.telegram.fail_next(
        "createForumTopic",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
    )
    await harness.sms("needs a topic")
    await harness.telegram.wait_for(lambda: harness.posts() == ["needs a topic"], timeout=10)
    limited, created = calls(harness, "createForumTopic")
    assert (limited.status, created.status) == (429, 200)
    assert created.at - limited.at >= 1.0
    assert len(harness.topics()) == 1


async def test_pacing_keeps_under_telegrams_limits_without_a_single_429(
    start_bridge: StartBridge,
) -> None:
    windows = {"chat": (5, 1.0), "group": (4, 2.0), "overall": (30, 1.0)}
    pacing = {k: {"messages": n, "seconds": s} for k, (n, s) in windows.items()}
    harness = await start_bridge(chat={"pacing": pacing})
    harness.telegram.limits = FakeLimits(
        per_chat=windows["chat"], group=windows["group"], overall=windows["overall"]
    )
    numbers = [f"+1555010{i:04d}" for i in range(8)]
    texts = [f"paced {i}" for i in range(len(numbers))]
    started = time.monotonic()
    for number, text in zip(numbers, texts, strict=True):
        await harness.sms(text, number=number)
    await harness.telegram.wait_for(lambda: sorted(harness.posts()) == texts, timeout=15)
    elapsed = time.monotonic() - started
    t0 = harness.telegram.calls[0].at
    timeline = [(c.method, c.status, round(c.at - t0, 3)) for c in harness.telegram.calls]
    assert harness.telegram.count("sendMessage", 429) == 0, timeline
    assert harness.telegram.count("createForumTopic", 429) == 0, timeline
    assert len(harness.topics()) == len(numbers)
    # 8 topics + 8 posts = 16 messages, at most 4 per 2 s in the group: >= (16/4 - 1) * 2 s.
    counted = [c for c in harness.telegram.calls if c.method in ("sendMessage", "createForumTopic")]
    assert len(counted) == 2 * len(numbers)
    span = counted[-1].at - counted[0].at
    print(f"16 paced messages took {span:.2f} s (total {elapsed:.2f} s)")
    assert span >= 6.0 - 0.05
    assert harness.telegram.violations == []


async def test_backlog_waits_in_the_store_and_drains_in_order(harness: Harness) -> None:
    harness.telegram.fail_next(
        "sendMessage", status=503, description="Service Unavailable", count=2
    )
    texts = [f"queued {i}" for i in range(5)]
    for text in texts:
        await harness.sms(text)
    await harness.telegram.wait_for(lambda: harness.telegram.count("sendMessage", 503) >= 1)
    pending = await backlog(harness)
    assert pending["chat_jobs"] == {"support": len(texts)}
    async with httpx.AsyncClient(trust_env=False) as client:
        health = (await client.get(f"{harness.base}/healthz")).json()
    assert health["store"]["backlog"]["chat_jobs"] == {"support": len(texts)}
    await harness.telegram.wait_for(lambda: harness.posts() == texts, timeout=10)
    assert harness.telegram.count("sendMessage", 503) == 2
    assert harness.telegram.count("sendMessage", 200) == len(texts)
    await eventually(lambda: idle(harness))


# -- gateway side: inbound -------------------------------------------------------------------


async def test_inbound_polling_outage_recovers_and_posts_what_arrived_meanwhile(
    start_bridge: StartBridge,
) -> None:
    harness = await start_bridge(gateway={"receive": "poll"})
    [poller] = harness.bridge.pollers
    harness.gateway.receive_sms(CUSTOMER, "before the outage")
    await harness.telegram.wait_for(lambda: harness.posts() == ["before the outage"])
    harness.gateway.fail_next("/getsms/", status=500, count=6)
    harness.gateway.receive_sms(CUSTOMER, "during the outage")
    await harness.gateway.wait_for(lambda: poller.failures >= 3)
    assert poller.health()["state"] == "down"
    async with httpx.AsyncClient(trust_env=False) as client:
        down = await client.get(f"{harness.base}/healthz")
    assert down.status_code == 503
    assert down.json()["gateways"]["office"]["state"] == "down"
    await harness.telegram.wait_for(
        lambda: harness.posts() == ["before the outage", "during the outage"], timeout=10
    )
    assert len([r for r in requests(harness, "/getsms/") if r.status == 500]) == 6
    await harness.gateway.wait_for(lambda: poller.health()["state"] == "ok")
    assert len(harness.topics()) == 1


# -- gateway side: outbound ------------------------------------------------------------------


async def test_gateway_500_is_reconciled_then_sent_once(harness: Harness) -> None:
    harness.gateway.fail_next("/sendsms/", status=500)
    _thread, message_id = await reply_in(harness, "after a 500")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1, timeout=10)
    await eventually(lambda: idle(harness))
    assert [s.message for s in harness.gateway.sent] == ["after a 500"]
    assert reaction(harness, message_id) == ["✍"]  # queued at the gateway, not failed
    failed, accepted = requests(harness, "/sendsms/")
    assert (failed.status, accepted.status) == (500, 200)
    # "Maybe sent": the log was asked before sending again.
    assert any(failed.at < r.at < accepted.at for r in requests(harness, "/log/sent/sms/"))
    [row] = await outbox_rows(harness)
    assert (row.status, row.provider_id, row.in_flight) == (
        "queued",
        harness.gateway.sent[0].guid,
        False,
    )


async def test_gateway_503_is_retried_without_reconciling(harness: Harness) -> None:
    harness.gateway.fail_next("/sendsms/", status=503)
    await reply_in(harness, "after a 503")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1, timeout=10)
    await eventually(lambda: idle(harness))
    assert [r.status for r in requests(harness, "/sendsms/")] == [503, 200]
    assert requests(harness, "/log/sent/sms/") == []  # a 503 never acted: nothing to reconcile


async def test_gateway_accepting_too_late_is_reconciled_not_sent_twice(
    start_bridge: StartBridge,
) -> None:
    harness = await start_bridge(gateway={"timeout": 0.5})
    harness.gateway.fail_next("/sendsms/", status=200, delay=1.5)  # accepted, answered late
    _thread, message_id = await reply_in(harness, "accepted but late")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    guid = harness.gateway.sent[0].guid

    async def reconciled() -> bool:
        rows = await outbox_rows(harness)
        return len(rows) == 1 and rows[0].provider_id == guid

    await eventually(reconciled, timeout=10)
    [row] = await outbox_rows(harness)
    assert (row.status, row.in_flight, row.attempts) == ("queued", False, 1)
    await harness.telegram.wait_for(lambda: reaction(harness, message_id) == ["✍"])
    response = await harness.gateway.deliver_status_v2(harness.signed_hook, guid, "sms.sent")
    assert response.status_code == 202
    await harness.telegram.wait_for(lambda: reaction(harness, message_id) == ["👌"])
    await eventually(lambda: idle(harness))
    assert len(harness.gateway.sent) == 1
    assert len(requests(harness, "/sendsms/")) == 1
    assert len(requests(harness, "/log/sent/sms/")) >= 1


async def test_gateway_timing_out_without_acting_is_sent_again_once(
    start_bridge: StartBridge,
) -> None:
    harness = await start_bridge(gateway={"timeout": 0.5})
    harness.gateway.fail_next("/sendsms/", status=500, delay=1.0)  # times out, never recorded
    _thread, message_id = await reply_in(harness, "lost in a timeout")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1, timeout=10)
    await eventually(lambda: idle(harness), timeout=10)
    assert [s.message for s in harness.gateway.sent] == ["lost in a timeout"]
    assert reaction(harness, message_id) == ["✍"]
    [row] = await outbox_rows(harness)
    assert (row.provider_id, row.attempts) == (harness.gateway.sent[0].guid, 2)


async def test_reconciliation_failing_is_retried_and_still_sends_once(
    start_bridge: StartBridge,
) -> None:
    harness = await start_bridge(gateway={"timeout": 0.5})
    harness.gateway.fail_next("/sendsms/", status=200, delay=1.5)
    harness.gateway.fail_next("/log/sent/sms/", status=500)  # the first look-up fails too
    _thread, message_id = await reply_in(harness, "accepted, log down")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    guid = harness.gateway.sent[0].guid
    await harness.gateway.wait_for(lambda: len(requests(harness, "/log/sent/sms/")) >= 1)
    await eventually(lambda: idle(harness), timeout=10)
    [row] = await outbox_rows(harness)
    assert row.provider_id == guid
    assert reaction(harness, message_id) == ["✍"]
    assert [r.status for r in requests(harness, "/log/sent/sms/")][:2] == [500, 200]
    assert len(harness.gateway.sent) == 1


async def test_gateway_429_waits_retry_after_and_sends_once(harness: Harness) -> None:
    harness.gateway.fail_next("/sendsms/", status=429, retry_after=1)
    await reply_in(harness, "rate limited")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1, timeout=10)
    await eventually(lambda: idle(harness))
    limited, accepted = requests(harness, "/sendsms/")
    assert (limited.status, accepted.status) == (429, 200)
    assert accepted.at - limited.at >= 1.0
    assert requests(harness, "/log/sent/sms/") == []  # a 429 did not act: nothing to reconcile
    assert [s.message for s in harness.gateway.sent] == ["rate limited"]


async def test_gateway_refusing_our_credentials_fails_for_good(harness: Harness) -> None:
    thread = await topic_for(harness)
    harness.gateway.api_key = "rotated-on-the-dashboard"  # our key is now wrong: 403
    reply = harness.telegram.user_message(GROUP, AGENT, "will not go", thread_id=thread)
    await harness.telegram.wait_for(lambda: reaction(harness, reply["message_id"]) == ["💔"])
    await harness.telegram.wait_for(
        lambda: any("refused our credentials" in p for p in harness.posts(thread))
    )
    notice = next(
        m
        for m in harness.telegram.sent_messages(GROUP, thread)
        if "refused our credentials" in m["text"]
    )
    assert notice["text"].startswith("💔 SMS not sent: ")
    assert notice["reply_to_message"]["message_id"] == reply["message_id"]
    [row] = await outbox_rows(harness)
    assert row.status == "failed"
    assert row.raw_status == "403"
    await eventually(lambda: idle(harness))
    assert [r.status for r in requests(harness, "/sendsms/")] == [403]  # never retried
    assert harness.gateway.sent == []
    assert sum("refused our credentials" in p for p in harness.posts()) == 1


async def test_gateway_application_error_in_a_200_fails_with_its_reason(
    harness: Harness,
) -> None:
    harness.gateway.fail_next(
        "/sendsms/",
        status=200,
        body={"result": {"error": 1, "sent": "0", "message": "Invalid number"}},
    )
    thread, message_id = await reply_in(harness, "to nowhere")
    await harness.telegram.wait_for(lambda: reaction(harness, message_id) == ["💔"])
    await harness.telegram.wait_for(
        lambda: any("Invalid number" in p for p in harness.posts(thread))
    )
    assert "💔 SMS not sent: SMSMobileAPI refused the SMS: Invalid number" in harness.posts(thread)
    [row] = await outbox_rows(harness)
    assert (row.status, row.raw_status) == ("failed", "1")
    await eventually(lambda: idle(harness))
    assert len(requests(harness, "/sendsms/")) == 1
    assert harness.gateway.sent == []


async def test_status_racing_ahead_of_reconciliation_is_kept_and_applied(
    start_bridge: StartBridge,
) -> None:
    harness = await start_bridge(gateway={"timeout": 0.5})
    harness.gateway.fail_next("/sendsms/", status=200, delay=1.5)
    _thread, message_id = await reply_in(harness, "fast phone, slow api")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    guid = harness.gateway.sent[0].guid
    # The phone reports "sent" while our client is still waiting for /sendsms/ to answer.
    early = await harness.gateway.deliver_status_v2(harness.signed_hook, guid, "sms.sent")
    assert early.status_code in (200, 202)
    await harness.telegram.wait_for(lambda: reaction(harness, message_id) == ["👌"], timeout=10)
    [row] = await outbox_rows(harness)
    assert (row.provider_id, row.status) == (guid, "sent")
    assert len(harness.gateway.sent) == 1


async def test_gateway_garbled_answer_is_reconciled_then_sent_once(harness: Harness) -> None:
    harness.gateway.fail_next("/sendsms/", status=200, raw=b"<html>502 upstream</html>")
    _thread, message_id = await reply_in(harness, "after a garbled answer")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1, timeout=10)
    await eventually(lambda: idle(harness))
    assert reaction(harness, message_id) == ["✍"]
    assert [r.status for r in requests(harness, "/sendsms/")] == [200, 200]
    assert len(requests(harness, "/log/sent/sms/")) >= 1
    assert [s.message for s in harness.gateway.sent] == ["after a garbled answer"]


async def test_gateway_500_on_a_repeated_text_still_sends_it(harness: Harness) -> None:
    """Reconciliation must not mistake the earlier, identical SMS for the interrupted one."""
    thread = await topic_for(harness)
    harness.telegram.user_message(GROUP, AGENT, "ok", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await eventually(lambda: idle(harness))  # the first "ok" is sent and recorded
    harness.gateway.fail_next("/sendsms/", status=500)  # never reached the phone
    second = harness.telegram.user_message(GROUP, AGENT, "ok", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(requests(harness, "/sendsms/")) >= 2)
    await eventually(lambda: idle(harness), timeout=10)
    rows = await outbox_rows(harness)
    assert [s.message for s in harness.gateway.sent] == ["ok", "ok"]  # the customer got both
    assert len({row.provider_id for row in rows}) == 2
    assert reaction(harness, second["message_id"]) == ["✍"]
