"""Delivery status on the chat message: reactions from V2 events or from polling the sent log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import AGENT, GROUP, Harness

from bridge import polling


async def replied(harness: Harness, text: str = "on my way") -> tuple[int, int, str]:
    """An SMS in, an answer out; returns (thread, the answer's message id, the SMS guid)."""
    await harness.sms("hi")
    await harness.telegram.wait_for(lambda: "hi" in harness.posts())
    thread = harness.topics()[0].thread_id
    reply = harness.telegram.user_message(GROUP, AGENT, text, thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 1)
    await harness.telegram.wait_for(lambda: _reaction(harness, reply["message_id"]) == ["✍"])
    return thread, reply["message_id"], harness.gateway.sent[0].guid


def _reaction(harness: Harness, message_id: int) -> list[str]:
    return harness.telegram.reaction(GROUP, message_id)


async def test_sent_event_sets_the_sent_reaction(harness: Harness) -> None:
    _thread, message_id, guid = await replied(harness)
    response = await harness.gateway.deliver_status_v2(harness.signed_hook, guid, "sms.sent")
    assert response.status_code == 202
    await harness.telegram.wait_for(lambda: _reaction(harness, message_id) == ["👌"])
    assert harness.telegram.violations == []


async def test_failed_event_sets_the_broken_heart_and_replies_with_the_reason(
    harness: Harness,
) -> None:
    thread, message_id, guid = await replied(harness)
    await harness.gateway.deliver_status_v2(
        harness.signed_hook, guid, "sms.failed", reason="No network coverage"
    )
    await harness.telegram.wait_for(lambda: _reaction(harness, message_id) == ["💔"])
    await harness.telegram.wait_for(
        lambda: "💔 SMS not sent: No network coverage" in harness.posts(thread_id=thread)
    )
    notice = next(
        m for m in harness.telegram.sent_messages(GROUP, thread) if m["text"].startswith("💔")
    )
    assert notice["reply_to_message"]["message_id"] == message_id


async def test_status_never_goes_backwards(harness: Harness) -> None:
    _thread, message_id, guid = await replied(harness)
    await harness.gateway.deliver_status_v2(harness.signed_hook, guid, "sms.sent")
    await harness.telegram.wait_for(lambda: _reaction(harness, message_id) == ["👌"])
    late = await harness.gateway.deliver_status_v2(harness.signed_hook, guid, "sms.api.submitted")
    assert late.status_code == 202  # a new event: accepted, though it changes nothing
    await harness.settled()
    assert _reaction(harness, message_id) == ["👌"]


async def test_redelivered_status_event_is_applied_once(harness: Harness) -> None:
    _thread, message_id, guid = await replied(harness)
    first = await harness.gateway.deliver_status_v2(
        harness.signed_hook, guid, "sms.sent", event_id="evt-sent"
    )
    again = await harness.gateway.deliver_status_v2(
        harness.signed_hook, guid, "sms.sent", event_id="evt-sent"
    )
    assert (first.status_code, again.status_code) == (202, 200)
    await harness.telegram.wait_for(lambda: _reaction(harness, message_id) == ["👌"])
    await harness.settled()
    assert harness.telegram.count("setMessageReaction") == 2  # ✍ then 👌, nothing more


async def test_status_from_polling_the_sent_log(start_bridge: Callable[..., Any]) -> None:
    harness: Harness = await start_bridge(gateway={"status_poll_interval": 0.2})
    thread, message_id, guid = await replied(harness)
    harness.gateway.set_status(guid, "Success")
    await harness.telegram.wait_for(lambda: _reaction(harness, message_id) == ["👌"])
    assert any(
        r.path.startswith("/log/sent/sms") and r.params.get("guid_message") == guid
        for r in harness.gateway.requests
    )
    second = harness.telegram.user_message(GROUP, AGENT, "second try", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 2)
    harness.gateway.set_status(harness.gateway.sent[1].guid, "Error", error="SIM not ready")
    await harness.telegram.wait_for(lambda: _reaction(harness, second["message_id"]) == ["💔"])
    await harness.telegram.wait_for(
        lambda: "💔 SMS not sent: SIM not ready" in harness.posts(thread_id=thread)
    )


async def test_status_polls_go_round_every_waiting_sms(
    start_bridge: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SMS that never get a receipt must not crowd out newer ones: pages of 2 go round all 5.
    monkeypatch.setattr(polling, "STATUS_PAGE", 2)
    harness: Harness = await start_bridge(gateway={"status_poll_interval": 3600})
    thread, _message_id, _guid = await replied(harness)
    for n in range(4):
        harness.telegram.user_message(GROUP, AGENT, f"follow-up {n}", thread_id=thread)
    await harness.gateway.wait_for(lambda: len(harness.gateway.sent) == 5)
    await harness.idle()
    [poller] = harness.bridge.pollers

    def asked() -> set[str]:
        return {
            r.params["guid_message"]
            for r in harness.gateway.requests
            if r.path.startswith("/log/sent/sms") and "guid_message" in r.params
        }

    for _ in range(3):
        await poller.poll_status()
    assert asked() == {sms.guid for sms in harness.gateway.sent}
