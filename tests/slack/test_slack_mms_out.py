"""Pictures and files out from Slack: a file shared in a number's thread leaves as an MMS
through Twilio, which fetches it from the bridge; the bridge downloads it by ``url_private``
with the bot token, and sends the token nowhere else."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from slack_support import AGENT_ID, CHANNEL, SlackHarness, start_slack, started_chat, world

from bridge.errors import Terminal, TooLarge
from bridge.models import ChatFile, ChatMessage
from bridge.testing.fake_harness import free_port
from connectors.chat.slack.fake import FakeSlack
from connectors.sms.twilio.fake import NUMBER, FakeTwilio

CUSTOMER = "+14155552345"
PICTURE = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with world() as fake:
        yield fake


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def bridge(
    slack: FakeSlack, twilio: FakeTwilio, start_bridge: Callable[..., Any]
) -> SlackHarness:
    port = free_port()
    gateway = twilio.section(
        "office", from_number=NUMBER, receive="poll", poll_interval=0.2, status_poll_interval=3600
    )
    server = {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"}
    return await start_slack(start_bridge, slack, gateways=[gateway], server=server)


async def thread_of(bridge: SlackHarness, twilio: FakeTwilio) -> str:
    twilio.receive_sms(CUSTOMER, "Do you have it in blue?")
    await bridge.slack.wait_for(
        lambda: any("Do you have it in blue?" in bridge.thread(p["ts"]) for p in bridge.parents())
    )
    await bridge.idle()
    [parent] = bridge.parents()
    return str(parent["ts"])


async def test_a_shared_picture_goes_out_as_mms_with_the_message_as_its_text(
    bridge: SlackHarness, slack: FakeSlack, twilio: FakeTwilio
) -> None:
    thread = await thread_of(bridge, twilio)
    slack.user_file(
        CHANNEL,
        AGENT_ID,
        "Blue shirt, front (large).png",
        "image/png",
        PICTURE,
        text="This one",
        thread_ts=thread,
    )
    await twilio.wait_for(lambda: len(twilio.sent) == 1)
    [sent] = twilio.sent
    assert (sent.to, sent.body) == (CUSTOMER, "This one")
    assert [(m.content_type, m.data) for m in sent.media] == [("image/png", PICTURE)]
    assert sent.media_urls[0].startswith(f"{bridge.harness.base}/media/")
    assert [authorized for _, authorized in slack.downloads] == [True]  # with the bot token
    async with httpx.AsyncClient(trust_env=False) as http:
        served = await http.get(sent.media_urls[0])
        forged = await http.get(sent.media_urls[0][:-4] + "AAAA")
    # The name as Twilio asks for it: no spaces or punctuation, 20 characters at most.
    assert served.headers["content-disposition"] == 'inline; filename="Blue_shirt_front.png"'
    assert forged.status_code == 404 and forged.json()["error"]


async def test_over_the_limit_or_of_a_type_twilio_refuses_gets_a_notice(
    bridge: SlackHarness, slack: FakeSlack, twilio: FakeTwilio
) -> None:
    thread = await thread_of(bridge, twilio)
    slack.user_file(
        CHANNEL, AGENT_ID, "a.mov", "video/quicktime", b"\0" * 5_100_000, thread_ts=thread
    )
    slack.user_file(CHANNEL, AGENT_ID, "x.zip", "application/zip", b"PK" * 100, thread_ts=thread)
    await slack.wait_for(
        lambda: (
            any("Too large for an MMS" in t for t in bridge.thread(thread))
            and any("cannot send x.zip (application/zip)" in t for t in bridge.thread(thread))
        )
    )
    await bridge.settled()
    assert twilio.sent == [] and slack.downloads == []  # refused on what Slack said


async def test_the_bot_token_goes_to_slack_only_and_a_missing_scope_is_named(
    slack: FakeSlack,
) -> None:
    seen: list[ChatMessage] = []
    async with started_chat(slack, seen) as platform:
        shared = slack.user_file(CHANNEL, AGENT_ID, "p.png", "image/png", PICTURE, deliver=False)
        [url] = [f["url_private"] for f in shared["files"]]
        got = await platform.fetch_file(ChatFile(url, "image/png", "p.png"), 10_000)
        assert got == PICTURE
        with pytest.raises(TooLarge):
            await platform.fetch_file(ChatFile(url, "image/png", "p.png"), 100)
        with pytest.raises(Terminal, match="not on Slack"):
            await platform.fetch_file(ChatFile("https://evil.example/p.png", "image/png"), 10_000)
        slack.revoked = True  # Slack then sends the browser to sign in: no file
        with pytest.raises(Terminal, match="files:read"):
            await platform.fetch_file(ChatFile(url, "image/png", "p.png"), 10_000)
    assert [authorized for _, authorized in slack.downloads] == [True, True, False]
