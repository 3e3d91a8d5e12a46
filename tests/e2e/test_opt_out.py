"""Opt-out and blocking on Telegram: STOP and START by SMS, refusal at send time, blocked
numbers stored and counted but not posted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import AGENT, CUSTOMER, GROUP, Harness

from bridge.metrics import Metrics

STOPPED = "🚫 +1 555-123-4567 replied STOP: opted out; replies to it will not be sent."
STARTED = "✅ +1 555-123-4567 replied START: opted back in; replies are sent."
REFUSED = "💔 SMS not sent: this number opted out, so nothing was sent to it."


async def topic_for(harness: Harness, text: str = "hi") -> int:
    await harness.sms(text)
    await harness.telegram.wait_for(lambda: text in harness.posts())
    await harness.idle()
    return int(harness.topics()[0].thread_id)


def sendsms_calls(harness: Harness) -> int:
    """Every call the gateway got to send, answered or refused."""
    return sum(1 for r in harness.gateway.requests if r.path == "/sendsms/")


def counted(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_stop_start_stop_with_a_reply_queued_while_the_gateway_is_down(
    harness: Harness,
) -> None:
    thread = await topic_for(harness)
    # The gateway is down: the reply waits in the outbox for its retry.
    harness.gateway.fail_next("/sendsms/", status=503, count=1000)
    queued = harness.telegram.user_message(GROUP, AGENT, "queued before", thread_id=thread)
    await harness.gateway.wait_for(lambda: sendsms_calls(harness) >= 1)
    await harness.sms("STOP")
    await harness.telegram.wait_for(lambda: STOPPED in harness.posts(thread_id=thread))
    down = sendsms_calls(harness)
    harness.gateway.clear_faults()  # the gateway is back
    # The retry finds the number opted out: failed without calling it, the thread told why.
    await harness.telegram.wait_for(
        lambda: any(p.startswith(REFUSED) for p in harness.posts(thread_id=thread)), 15
    )
    notice = next(
        m for m in harness.telegram.sent_messages(GROUP, thread) if m["text"].startswith("💔")
    )
    assert notice["reply_to_message"]["message_id"] == queued["message_id"]
    assert harness.telegram.reaction(GROUP, queued["message_id"]) == ["💔"]
    assert sendsms_calls(harness) == down and harness.gateway.sent == []

    # The SMS itself is posted like any other, the notice after it; START lifts it.
    await harness.sms(" start ")
    await harness.telegram.wait_for(lambda: STARTED in harness.posts(thread_id=thread))
    harness.telegram.user_message(GROUP, AGENT, "welcome back", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert harness.gateway.sent[0].message == "welcome back"

    await harness.sms("stop")
    await harness.telegram.wait_for(lambda: STOPPED in harness.posts(thread_id=thread))
    harness.telegram.user_message(GROUP, AGENT, "one more thing", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: sum(p.startswith(REFUSED) for p in harness.posts(thread_id=thread)) == 2
    )
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == ["welcome back"]
    posts = harness.posts(thread_id=thread)
    assert posts.count("STOP") == 1 and posts.count("stop") == 1 and " start " in posts
    assert posts.index("STOP") + 1 == posts.index(STOPPED)  # the notice right after the SMS
    assert posts.count(STOPPED) == 2 and posts.count(STARTED) == 1
    metrics = harness.bridge.metrics
    assert counted(metrics, "smsbridge_opt_outs_total", gateway="office", event="stop") == 2
    assert counted(metrics, "smsbridge_opt_outs_total", gateway="office", event="start") == 1
    assert (await harness.bridge.store.contacts.get(CUSTOMER)).opted_out


async def test_keywords_ignore_case_and_spaces_but_not_other_words(harness: Harness) -> None:
    thread = await topic_for(harness)
    for text in ("  Unsubscribe\n", "please stop", "STOP!", "Quit"):
        await harness.sms(text)
    await harness.telegram.wait_for(lambda: "Quit" in harness.posts(thread_id=thread))
    await harness.settled()
    notices = [p for p in harness.posts(thread_id=thread) if p.startswith("🚫")]
    assert notices == [
        "🚫 +1 555-123-4567 replied UNSUBSCRIBE: opted out; replies to it will not be sent.",
        "🚫 +1 555-123-4567 replied QUIT: opted out; replies to it will not be sent.",
    ]


async def test_a_start_word_from_a_number_that_never_stopped_is_just_a_message(
    harness: Harness,
) -> None:
    """A "yes" answers a question far more often than it lifts an opt-out: unless the number
    opted out, it changes nothing and the thread is told nothing."""
    thread = await topic_for(harness)
    await harness.sms("Yes")
    await harness.telegram.wait_for(lambda: "Yes" in harness.posts(thread_id=thread))
    await harness.settled()
    assert harness.posts(thread_id=thread) == ["hi", "Yes"]
    metrics = harness.bridge.metrics
    assert counted(metrics, "smsbridge_opt_outs_total", gateway="office", event="start") == 0


async def test_custom_keywords_and_a_confirmation_sent_once(
    start_bridge: Callable[..., Any],
) -> None:
    confirmation = "You will get no more texts from us. Reply GO to resume."
    harness: Harness = await start_bridge(
        opt_out={"stop": ["HALT"], "start": ["GO"], "confirmation": confirmation}
    )
    thread = await topic_for(harness)
    await harness.sms("STOP")  # not a keyword here: a plain message
    halt = await harness.sms("halt")
    await harness.telegram.wait_for(lambda: "halt" in harness.posts(thread_id=thread))
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    assert (harness.gateway.sent[0].recipients, harness.gateway.sent[0].message) == (
        CUSTOMER,
        confirmation,
    )
    # The same webhook again (the gateway thought we failed): no second notice, no second text.
    again = await harness.gateway.deliver_received_v2(harness.signed_hook, halt)
    assert again.status_code == 200
    await harness.settled()
    posts = harness.posts(thread_id=thread)
    assert [p for p in posts if p.startswith("🚫")] == [
        "🚫 +1 555-123-4567 replied HALT: opted out; replies to it will not be sent. "
        "The confirmation text goes out once."
    ]
    assert "STOP" in posts and len(harness.gateway.sent) == 1
    # The confirmation has no chat message: nothing shows its status, nothing echoes it.
    assert not any(confirmation in p for p in posts)
    await harness.sms("go")
    await harness.telegram.wait_for(
        lambda: (
            "✅ +1 555-123-4567 replied GO: opted back in; replies are sent."
            in harness.posts(thread_id=thread)
        )
    )


async def test_a_blocked_number_is_stored_and_counted_not_posted_nor_answered(
    harness: Harness,
) -> None:
    thread = await topic_for(harness)
    await harness.bridge.store.contacts.set_blocked(CUSTOMER, True)
    blocked = await harness.sms("are you ignoring me?")
    await harness.sms("STOP")  # still opts out, silently
    harness.telegram.user_message(GROUP, AGENT, "/sms +1 555 123 4567 hello there")
    reply = harness.telegram.user_message(GROUP, AGENT, "a reply", thread_id=thread)
    await harness.telegram.wait_for(
        lambda: (
            "💔 SMS not sent: this number is blocked, so nothing was sent to it."
            in harness.posts(thread_id=thread)
        )
    )
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, reply["message_id"]) == ["💔"]
    )
    await harness.settled()
    assert harness.gateway.sent == []
    # The reply, and /sms both beside the command and under its echo in the topic.
    assert sum(p.startswith("💔") for p in harness.posts(thread_id=thread)) == 2
    assert sum(p.startswith("💔") for p in harness.posts()) == 3
    assert harness.posts(thread_id=thread)[0] == "hi"
    assert not any(p in ("are you ignoring me?", "STOP") for p in harness.posts())
    assert not any(p.startswith("🚫") for p in harness.posts())
    known = await harness.bridge.store.inbound.known("office", [blocked.guid])
    assert known == {blocked.guid}
    metrics = harness.bridge.metrics
    routed = {"gateway": "office", "route": "", "outcome": "blocked"}
    assert counted(metrics, "smsbridge_routed_sms_total", **routed) == 2
    assert (await harness.bridge.store.contacts.get(CUSTOMER)).opted_out

    # Unblocked (and opted back in), its SMS are posted and answered again.
    await harness.bridge.store.contacts.set_blocked(CUSTOMER, False)
    await harness.sms("YES")
    await harness.telegram.wait_for(lambda: "YES" in harness.posts(thread_id=thread))
    harness.telegram.user_message(GROUP, AGENT, "sorry about that", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
