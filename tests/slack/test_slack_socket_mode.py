"""Socket Mode: events and commands over the WebSocket that apps.connections.open hands out."""

from __future__ import annotations

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

from connectors.chat.slack.fake import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world(ack_timeout=1.0) as fake:
        yield fake


@pytest.fixture
async def bridge(slack: FakeSlack, start_bridge: Callable[..., Any]) -> SlackHarness:
    chat = slack_section(slack, app_token=slack.app_token, signing_secret=None)
    running = await start_slack(start_bridge, slack, chat=chat)
    await slack.wait_for(lambda: slack.socket_connected)
    return running


async def test_a_reply_over_socket_mode_becomes_an_sms(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    assert slack.request_url is None  # no public URL anywhere
    ts = await bridge.thread_for()
    reply = slack.user_message(CHANNEL, AGENT_ID, "over the socket", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    assert bridge.gateway.sent[0].message == "over the socket"
    await slack.wait_for(
        lambda: slack.reactions(CHANNEL, reply["ts"]) == ["hourglass_flowing_sand"]
    )
    await bridge.settled()
    # Every envelope (our own echoes too) was acknowledged at the first attempt.
    assert all(d.attempts == ["ack"] for d in slack.deliveries)
    assert [c.method for c in slack.calls].count("apps.connections.open") == 1
    health = bridge.bridge.chats["team"].health()
    assert (health["state"], health["transport"]) == ("ok", "socket_mode")


async def test_a_redelivered_envelope_sends_one_sms(bridge: SlackHarness, slack: FakeSlack) -> None:
    ts = await bridge.thread_for()
    reply = slack.user_message(CHANNEL, AGENT_ID, "just once", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    await bridge.settled()
    [delivery] = [d for d in slack.deliveries if d.payload["event"].get("ts") == reply["ts"]]
    # Slack sends it again (it thought the ack was lost), with the same event_id.
    slack.redeliver(delivery)
    await bridge.settled()
    assert [s.message for s in bridge.gateway.sent] == ["just once"]
    assert slack.deliveries[-1].attempts == ["ack"]


async def test_the_slash_command_over_socket_mode(bridge: SlackHarness, slack: FakeSlack) -> None:
    slack.slash_command(CHANNEL, AGENT_ID, "/sms", "+1 555 987 6543 Hello there")
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)
    assert bridge.gateway.sent[0].recipients == "+15559876543"
    [command] = [d for d in slack.deliveries if d.kind == "slash_commands"]
    assert command.attempts == ["ack"]


async def test_a_disconnect_request_is_followed_by_a_new_connection(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    await slack.disconnect_sockets()
    await slack.wait_for(lambda: slack.count("apps.connections.open") == 2)
    await slack.wait_for(lambda: slack.socket_connected)
    ts = await bridge.thread_for()
    slack.user_message(CHANNEL, AGENT_ID, "after reconnecting", thread_ts=ts)
    await bridge.gateway.wait_for(lambda: len(bridge.gateway.sent) == 1)


async def test_the_http_endpoint_is_closed_in_socket_mode(
    bridge: SlackHarness, slack: FakeSlack
) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        body = b'{"type": "url_verification", "challenge": "x"}'
        response = await http.post(
            bridge.events_url, content=body, headers=slack.signed_headers(body)
        )
    assert response.status_code == 404


async def test_health_reports_a_lost_socket(bridge: SlackHarness, slack: FakeSlack) -> None:
    chat = bridge.bridge.chats["team"]
    assert chat.health()["state"] == "ok"
    # slack_sdk reconnects by itself; Slack refusing the new connection keeps it down.
    slack.fail_next("apps.connections.open", "internal_error", count=1000)
    await slack.drop_sockets()
    await slack.wait_for(lambda: chat.health()["state"] == "down")
    assert "Socket Mode" in str(chat.health()["last_error"])
