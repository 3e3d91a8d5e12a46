"""Segment-aware replies on Telegram: counted before queueing, refused over max_segments
unless confirmed with "!", and the part count shown once the SMS has gone out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import AGENT, GROUP, Harness


async def topic_for(harness: Harness) -> int:
    await harness.sms("hi")
    await harness.telegram.wait_for(lambda: "hi" in harness.posts())
    await harness.idle()
    return int(harness.topics()[0].thread_id)


async def test_over_max_segments_is_refused_until_confirmed_with_a_bang(
    start_bridge: Callable[..., Any],
) -> None:
    harness: Harness = await start_bridge(max_segments=1)
    thread = await topic_for(harness)
    gsm = "a" * 160  # one part exactly
    euros = "€" * 80  # the extension table costs 2 septets: 160, one part
    braces = "{" * 81  # 162 septets: two parts
    emoji = "x" * 69 + "😀"  # UCS-2: 71 units, two parts
    for text in (gsm, euros, braces, emoji):
        harness.telegram.user_message(GROUP, AGENT, text, thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 2)
    await harness.telegram.wait_for(
        lambda: sum(p.startswith("⚠️") for p in harness.posts(thread_id=thread)) == 2
    )
    await harness.settled()
    assert [s.message for s in harness.gateway.sent] == [gsm, euros]
    notices = [p for p in harness.posts(thread_id=thread) if p.startswith("⚠️")]
    assert notices == [
        "⚠️ Not sent: this reply is 2 SMS parts (GSM-7), over the limit of 1. "
        "Send it again starting with ! to send anyway.",
        "⚠️ Not sent: this reply is 2 SMS parts (UCS-2 because of '😀'), over the limit of 1. "
        "Send it again starting with ! to send anyway.",
    ]
    refusal = next(
        m for m in harness.telegram.sent_messages(GROUP, thread) if m["text"] == notices[1]
    )
    assert refusal["reply_to_message"]["text"] == emoji

    # Sent again with "!" in front, it goes out without the mark; /sms takes it too.
    harness.telegram.user_message(GROUP, AGENT, "!" + emoji, thread_id=thread)
    harness.telegram.user_message(GROUP, AGENT, f"/sms +15559876543 !{braces}")
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 4)
    assert [s.message for s in harness.gateway.sent[2:]] == [emoji, braces]


async def test_the_sent_status_tells_the_part_count_once(harness: Harness) -> None:
    thread = await topic_for(harness)
    long = "Your order " + "is on its way " * 15  # 221 GSM-7 characters: 2 parts
    reply = harness.telegram.user_message(GROUP, AGENT, long, thread_id=thread)
    short = harness.telegram.user_message(GROUP, AGENT, "short one", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 2)
    for sms in harness.gateway.sent:
        await harness.gateway.deliver_status_v2(harness.signed_hook, sms.guid, "sms.sent")
    await harness.telegram.wait_for(
        lambda: harness.telegram.reaction(GROUP, short["message_id"]) == ["👌"]
    )
    await harness.telegram.wait_for(
        lambda: "📤 sent as 2 SMS parts (GSM-7)" in harness.posts(thread_id=thread)
    )
    # Another "sent" event later changes nothing: the count was told once.
    await harness.gateway.deliver_status_v2(
        harness.signed_hook, harness.gateway.sent[0].guid, "sms.sent", event_id="late"
    )
    await harness.settled()
    counts = [
        m for m in harness.telegram.sent_messages(GROUP, thread) if m["text"].startswith("📤 sent")
    ]
    assert len(counts) == 1
    assert counts[0]["reply_to_message"]["message_id"] == reply["message_id"]
