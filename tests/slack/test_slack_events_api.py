"""The Events API endpoint: signatures, url_verification, Slack's retries, pacing and 429s."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from slack_support import (
    AGENT_ID,
    CHANNEL,
    SlackHarness,
    slack_section,
    start_slack,
    world,
)

from connectors.chat.slack.fake import FakeSlack, Limits


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    return await start_slack(start_bridge, slack)


def reply_event(slack: FakeSlack, thread_ts: str, text: str) -> dict[str, Any]:
    """An agent's reply as Slack would deliver it; the fake does not send it by itself."""
    message = slack.user_message(CHANNEL, AGENT_ID, text, thread_ts=thread_ts, deliver=False)
    return slack.event_of(CHANNEL, message)


async def test_url_verification_is_answered_with_the_challenge(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    challenge = {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    response = await slack.post_to_app(bridge.events_url, {**challenge, "type": "url_verification"})
    assert response.status_code == 200
    assert response.json() == {"challenge": challenge["challenge"]}


async def test_bad_or_stale_signatures_get_401_and_change_nothing(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    ts = await bridge.thread_for()
    calls = len(slack.calls)
    forged = await slack.post_to_app(
        bridge.events_url, reply_event(slack, ts, "forged"), secret="not-the-signing-secret"
    )
    stale = await slack.post_to_app(
        bridge.events_url, reply_event(slack, ts, "stale"), timestamp=int(time.time()) - 301
    )
    future = await slack.post_to_app(
        bridge.events_url, reply_event(slack, ts, "future"), timestamp=int(time.time()) + 301
    )
    async with httpx.AsyncClient(trust_env=False) as http:
        unsigned = await http.post(bridge.events_url, json=reply_event(slack, ts, "bare"))
    assert [r.status_code for r in (forged, stale, future, unsigned)] == [401, 401, 401, 401]
    assert slack.signing_secret not in forged.text
    await bridge.settled()
    assert bridge.gateway.sent == []
    assert len(slack.calls) == calls  # not even a name lookup


async def test_signed_but_malformed_requests_are_refused_with_400(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        for body in (b"{not json", b'["a", "list"]', b"\xff\xfe"):
            headers = {"Content-Type": "application/json", **slack.signed_headers(body)}
            response = await http.post(bridge.events_url, content=body, headers=headers)
            assert response.status_code == 400, body


async def test_slack_retries_of_one_event_send_one_sms_even_across_a_restart(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    bridge = await start_slack(start_bridge, slack)
    ts = await bridge.thread_for()
    event = reply_event(slack, ts, "only once")
    first = await slack.post_to_app(bridge.events_url, event)
    retries = [await slack.post_to_app(bridge.events_url, event, retry_num=n) for n in (1, 2)]
    assert [r.status_code for r in (first, *retries)] == [200, 200, 200]
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.settled()
    # A restart forgets what the connector remembered; the store still knows the event.
    await bridge.bridge.stop()
    restarted = await start_slack(start_bridge, slack)
    last = await slack.post_to_app(restarted.events_url, event, retry_num=3)
    assert last.status_code == 200
    await restarted.settled()
    assert [s.message for s in restarted.gateway.sent] == ["only once"]


async def test_posts_are_paced_per_channel_without_hitting_slack_limits(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    slack.limits = Limits(post_per_channel=(1, 1.0))
    chat = slack_section(slack, pacing={"channel": {"messages": 1, "seconds": 1}})
    bridge = await start_slack(start_bridge, slack, chat=chat)
    await bridge.sms("one")
    await bridge.sms("two")
    await slack.wait_for(lambda: len(slack.texts(CHANNEL)) == 3, timeout=8)
    posts = [c.at for c in slack.calls if c.method == "chat.postMessage"]
    assert slack.count("chat.postMessage", status=429) == 0
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(posts))


async def test_a_429_is_waited_out_and_nothing_is_lost_or_doubled(
    slack: FakeSlack, start_bridge: Callable[..., Any]
) -> None:
    slack.limits = Limits(post_per_channel=(1, 1.0))
    bridge = await start_slack(start_bridge, slack)  # pacing far above what Slack allows
    for text in ("a", "b", "c"):
        await bridge.sms(text)
    await slack.wait_for(lambda: len(slack.texts(CHANNEL)) == 4, timeout=10)
    [parent] = bridge.parents()
    assert bridge.thread(parent["ts"]) == ["a", "b", "c"]
    refused = [c for c in slack.calls if c.method == "chat.postMessage" and c.status == 429]
    assert refused
    for call in refused:
        # Nothing went to Slack again until its Retry-After (1 s) had passed.
        after = [c.at for c in slack.calls if c.method == "chat.postMessage" and c.at > call.at]
        assert after and after[0] - call.at >= 0.95
